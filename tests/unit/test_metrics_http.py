"""The /metrics and /healthz HTTP server on 127.0.0.1:0, spoken to over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from grpc_health.v1 import health, health_pb2
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from server.metrics import Metrics
from server.metrics_http import MetricsHttpServer, grpc_health_check, parse_address


class Response:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}


async def http(port: int, request: bytes) -> Response:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return Response(await asyncio.wait_for(reader.read(), 5))
    finally:
        writer.close()
        await writer.wait_closed()


async def get(port: int, path: str, method: str = "GET") -> Response:
    return await http(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


class Health:
    def __init__(self) -> None:
        self.serving = True

    async def __call__(self) -> bool:
        return self.serving


@pytest.fixture
async def metrics() -> Metrics:
    return Metrics(process=False)


@pytest.fixture
async def served(metrics: Metrics) -> AsyncIterator[tuple[MetricsHttpServer, Health]]:
    state = Health()

    async def refresh() -> None:
        metrics.set_queued_jobs(3)

    server = MetricsHttpServer(metrics.registry, "127.0.0.1:0", health=state, refresh=refresh)
    await server.start()
    try:
        yield server, state
    finally:
        await server.stop()


async def test_metrics_endpoint(served: tuple[MetricsHttpServer, Health]) -> None:
    server, _ = served
    assert server.port > 0
    response = await get(server.port, "/metrics?x=1")
    assert response.status == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert int(response.headers["content-length"]) == len(response.body)
    families = {f.name: f for f in text_string_to_metric_families(response.body.decode())}
    assert families["auton8n_jobs_queued"].samples[0].value == 3.0  # refreshed first
    assert "grpc_server_handled" in families
    head = await get(server.port, "/metrics", "HEAD")
    assert head.status == 200 and head.body == b""


async def test_healthz_follows_the_health_callable(
    served: tuple[MetricsHttpServer, Health],
) -> None:
    server, state = served
    ok = await get(server.port, "/healthz")
    assert (ok.status, ok.body) == (200, b"SERVING\n")
    state.serving = False
    down = await get(server.port, "/healthz")
    assert (down.status, down.body) == (503, b"NOT_SERVING\n")


async def test_livez_follows_its_own_callable(metrics: Metrics) -> None:
    ready, alive = Health(), Health()
    server = MetricsHttpServer(metrics.registry, "127.0.0.1:0", health=ready, liveness=alive)
    await server.start()
    try:
        ready.serving = False  # not ready (the database is away) but alive
        assert (await get(server.port, "/healthz")).status == 503
        assert (await get(server.port, "/livez")).status == 200
        alive.serving = False  # shutting down
        assert (await get(server.port, "/livez")).body == b"NOT_SERVING\n"
    finally:
        await server.stop()


async def test_no_livez_without_a_liveness_check(
    served: tuple[MetricsHttpServer, Health],
) -> None:
    server, _ = served
    assert (await get(server.port, "/livez")).status == 404


async def test_not_found_bad_method_and_garbage(
    served: tuple[MetricsHttpServer, Health],
) -> None:
    server, _ = served
    assert (await get(server.port, "/")).status == 404
    assert (await get(server.port, "/metricsx")).status == 404
    assert (await get(server.port, "/metrics", "POST")).status == 405
    # Not HTTP, or a request line over the limit: the connection just closes.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"hello\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()
    assert (await get(server.port, "/healthz")).status == 200  # still serving


async def test_slow_refresh_and_broken_health_degrade_gracefully(metrics: Metrics) -> None:
    async def hang() -> None:
        await asyncio.sleep(30)

    async def broken() -> bool:
        raise RuntimeError("database gone")

    server = MetricsHttpServer(
        metrics.registry, "127.0.0.1:0", health=broken, refresh=hang, refresh_timeout_s=0.1
    )
    await server.start()
    try:
        assert (await get(server.port, "/metrics")).status == 200  # stale but served
        assert (await get(server.port, "/healthz")).status == 503
    finally:
        await server.stop()
        await server.stop()  # idempotent


async def test_stop_ends_idle_connections(metrics: Metrics) -> None:
    server = MetricsHttpServer(metrics.registry, "127.0.0.1:0", health=Health())
    port = await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # never finishes its headers
    await asyncio.sleep(0.05)
    await asyncio.wait_for(server.stop(), 2)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    await writer.wait_closed()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_grpc_health_check_reads_the_servicer() -> None:
    servicer = health.aio.HealthServicer()
    overall = grpc_health_check(servicer)
    plugin = grpc_health_check(servicer, "auton8n.v1.PluginService")
    assert await overall() is True
    assert await plugin() is False  # unknown service
    await servicer.set("auton8n.v1.PluginService", health_pb2.HealthCheckResponse.SERVING)
    assert await plugin() is True
    await servicer.enter_graceful_shutdown()
    assert await overall() is False and await plugin() is False


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        (":9464", ("", 9464)),
        ("[::1]:9464", ("::1", 9464)),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["9464", "host:", "host:http", "h:70000"])
def test_parse_address_rejects(address: str) -> None:
    with pytest.raises(ValueError):
        parse_address(address)
