"""Metrics: the gRPC interceptor on a real grpc.aio server, scraped and parsed with the
Prometheus text parser; the service metrics' label bounds; registry isolation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from server.api.interceptors import ErrorInterceptor
from server.api.metrics_interceptor import MetricsInterceptor
from server.domain.job import Job
from server.domain.spec import PluginSpec
from server.domain.states import JobState, Phase
from server.errors import ServiceError
from server.metrics import Metrics, PhaseTimer

HEALTH = "grpc.health.v1.Health"
TEST = "test.v1.Probe"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    """Every sample as (name, labels) -> value, via the Prometheus text parser."""
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(samples: Samples, name: str, **match: str) -> dict[frozenset[tuple[str, str]], float]:
    """Samples of ``name`` whose labels include ``match``."""
    want = set(match.items())
    return {labels: v for (n, labels), v in samples.items() if n == name and want <= labels}


def grpc_labels(grpc_type: str, service: str, method: str, **extra: str) -> frozenset[Any]:
    labels = {"grpc_type": grpc_type, "grpc_service": service, "grpc_method": method, **extra}
    return frozenset(labels.items())


# A tiny raw-bytes service covering every handler kind, async-generator and write style.


async def stream_gen(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(int(request or b"0")):
        yield b"%d" % i
    if request == b"2":
        raise ServiceError("boom after two")  # ErrorInterceptor: INTERNAL


async def stream_write(request: bytes, context: Any) -> None:
    for i in range(int(request)):
        await context.write(b"%d" % i)


async def crash(request: bytes, context: Any) -> bytes:
    raise RuntimeError("not a ServiceError")


async def slow(request: bytes, context: Any) -> bytes:
    await asyncio.sleep(10)
    return b""


async def total(requests: AsyncIterator[bytes], context: Any) -> bytes:
    return b"%d" % sum([int(r) async for r in requests])


async def echo(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for r in requests:
        yield r


async def echo_read(requests: AsyncIterator[bytes], context: Any) -> None:
    while (message := await context.read()) is not grpc.aio.EOF:
        await context.write(message)
        await context.write(message)


PROBE = grpc.method_handlers_generic_handler(
    TEST,
    {
        "StreamGen": grpc.unary_stream_rpc_method_handler(stream_gen),
        "StreamWrite": grpc.unary_stream_rpc_method_handler(stream_write),
        "Crash": grpc.unary_unary_rpc_method_handler(crash),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Total": grpc.stream_unary_rpc_method_handler(total),
        "Echo": grpc.stream_stream_rpc_method_handler(echo),
        "EchoRead": grpc.stream_stream_rpc_method_handler(echo_read),
    },
)


class Served:
    def __init__(self, metrics: Metrics, health: health.aio.HealthServicer, port: int) -> None:
        self.metrics = metrics
        self.health = health
        self.port = port


async def serve(*interceptors: grpc.aio.ServerInterceptor) -> tuple[grpc.aio.Server, Served]:
    metrics = Metrics(process=False)
    server = grpc.aio.server(interceptors=[MetricsInterceptor(metrics), *interceptors])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((PROBE,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, Served(metrics, servicer, port)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    server, info = await serve(ErrorInterceptor())
    try:
        yield info
    finally:
        await server.stop(None)


async def eventually(check: Callable[[], bool]) -> None:
    """Server-side bookkeeping of a cancelled call lands shortly after the client's."""
    for _ in range(250):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the server never recorded the call")


async def test_health_check_and_watch_series(served: Served) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(3):
            await stub.Check(health_pb2.HealthCheckRequest())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        watch = stub.Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        await served.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()

        def watch_handled() -> bool:
            return bool(
                series(scrape(served.metrics), "grpc_server_handled_total", grpc_method="Watch")
            )

        await eventually(watch_handled)

    s = scrape(served.metrics)
    check = grpc_labels("unary", HEALTH, "Check")
    watch_labels = grpc_labels("server_stream", HEALTH, "Watch")
    assert series(s, "grpc_server_started_total", grpc_service=HEALTH) == {
        check: 4.0,
        watch_labels: 1.0,
    }
    assert series(s, "grpc_server_handled_total", grpc_service=HEALTH) == {
        check | {("grpc_code", "OK")}: 3.0,
        check | {("grpc_code", "NOT_FOUND")}: 1.0,
        watch_labels | {("grpc_code", "CANCELLED")}: 1.0,
    }
    assert series(s, "grpc_server_msg_received_total", grpc_service=HEALTH) == {
        check: 4.0,
        watch_labels: 1.0,
    }
    # A NOT_FOUND Check sends no message; the Watch wrote two (context.write style).
    assert series(s, "grpc_server_msg_sent_total", grpc_service=HEALTH) == {
        check: 3.0,
        watch_labels: 2.0,
    }
    # Latency for unary calls only, every outcome.
    assert series(s, "grpc_server_handling_seconds_count", grpc_service=HEALTH) == {check: 4.0}
    buckets = series(s, "grpc_server_handling_seconds_bucket", grpc_method="Check")
    assert buckets[check | {("le", "+Inf")}] == 4.0
    assert len(buckets) == 12  # DefBuckets + +Inf


async def test_every_handler_kind(served: Served) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        gen = channel.unary_stream(f"/{TEST}/StreamGen")
        assert [m async for m in gen(b"3")] == [b"0", b"1", b"2"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            _ = [m async for m in gen(b"2")]
        assert err.value.code() == grpc.StatusCode.INTERNAL
        write = channel.unary_stream(f"/{TEST}/StreamWrite")
        assert [m async for m in write(b"4")] == [b"0", b"1", b"2", b"3"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary(f"/{TEST}/Crash")(b"")
        assert err.value.code() == grpc.StatusCode.INTERNAL
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary(f"/{TEST}/Slow")(b"", timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert await channel.stream_unary(f"/{TEST}/Total")(iter([b"1", b"2", b"3"])) == b"6"
        echoed = channel.stream_stream(f"/{TEST}/Echo")(iter([b"a", b"b"]))
        assert [m async for m in echoed] == [b"a", b"b"]
        read_style = channel.stream_stream(f"/{TEST}/EchoRead")(iter([b"x", b"y", b"z"]))
        assert len([m async for m in read_style]) == 6

        def slow_handled() -> bool:
            return bool(
                series(scrape(served.metrics), "grpc_server_handled_total", grpc_method="Slow")
            )

        await eventually(slow_handled)

    s = scrape(served.metrics)
    ss, un = "server_stream", "unary"
    assert series(s, "grpc_server_handled_total", grpc_service=TEST) == {
        grpc_labels(ss, TEST, "StreamGen", grpc_code="OK"): 1.0,
        grpc_labels(ss, TEST, "StreamGen", grpc_code="INTERNAL"): 1.0,
        grpc_labels(ss, TEST, "StreamWrite", grpc_code="OK"): 1.0,
        grpc_labels(un, TEST, "Crash", grpc_code="INTERNAL"): 1.0,
        grpc_labels(un, TEST, "Slow", grpc_code="DEADLINE_EXCEEDED"): 1.0,
        grpc_labels("client_stream", TEST, "Total", grpc_code="OK"): 1.0,
        grpc_labels("bidi_stream", TEST, "Echo", grpc_code="OK"): 1.0,
        grpc_labels("bidi_stream", TEST, "EchoRead", grpc_code="OK"): 1.0,
    }
    assert series(s, "grpc_server_msg_sent_total", grpc_service=TEST) == {
        grpc_labels(ss, TEST, "StreamGen"): 5.0,  # 3 + 2 before the error
        grpc_labels(ss, TEST, "StreamWrite"): 4.0,
        grpc_labels(un, TEST, "Crash"): 0.0,
        grpc_labels(un, TEST, "Slow"): 0.0,
        grpc_labels("client_stream", TEST, "Total"): 1.0,
        grpc_labels("bidi_stream", TEST, "Echo"): 2.0,
        grpc_labels("bidi_stream", TEST, "EchoRead"): 6.0,
    }
    assert series(s, "grpc_server_msg_received_total", grpc_service=TEST) == {
        grpc_labels(ss, TEST, "StreamGen"): 2.0,
        grpc_labels(ss, TEST, "StreamWrite"): 1.0,
        grpc_labels(un, TEST, "Crash"): 1.0,
        grpc_labels(un, TEST, "Slow"): 1.0,
        grpc_labels("client_stream", TEST, "Total"): 3.0,
        grpc_labels("bidi_stream", TEST, "Echo"): 2.0,
        grpc_labels("bidi_stream", TEST, "EchoRead"): 3.0,
    }
    assert series(s, "grpc_server_handling_seconds_count", grpc_service=TEST) == {
        grpc_labels(un, TEST, "Crash"): 1.0,
        grpc_labels(un, TEST, "Slow"): 1.0,
    }


async def test_unhandled_exception_without_error_interceptor_is_unknown() -> None:
    server, info = await serve()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{info.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary(f"/{TEST}/Crash")(b"")
            assert err.value.code() == grpc.StatusCode.UNKNOWN
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await channel.unary_unary(f"/{TEST}/Nope")(b"")
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)
    s = scrape(info.metrics)
    assert series(s, "grpc_server_handled_total") == {
        grpc_labels("unary", TEST, "Crash", grpc_code="UNKNOWN"): 1.0
    }  # an unknown method has no handler, so it is not counted


def test_job_series_and_bounded_labels() -> None:
    m = Metrics(process=False)
    m.job_created()
    m.job_created()
    m.job_finished("SUCCEEDED", 42.0, 2)
    m.job_finished("FAILED", 1900.0, 5)
    m.job_finished("RUNNING", 1.0, 1)  # not terminal: "other"
    m.phase_finished("BUILDING", 3.0)
    m.phase_finished("NAPPING", 3.0)
    m.model_request("ok")
    m.model_request("teapot")
    m.model_tokens("input", 1200)
    m.model_tokens("output", 0)  # nothing to add
    m.rate_limited("/auton8n.v1.PluginService/CreatePlugin")
    m.sandbox_killed("timeout")
    m.set_queued_jobs(7)
    m.set_active_jobs_source(lambda: 2)
    s = scrape(m)
    assert s[("auton8n_jobs_created_total", frozenset())] == 2.0
    assert {dict(k)["state"]: v for k, v in series(s, "auton8n_jobs_finished_total").items()} == {
        "SUCCEEDED": 1.0,
        "FAILED": 1.0,
        "CANCELLED": 0.0,  # known values start at zero
        "other": 1.0,
    }
    assert series(s, "auton8n_job_duration_seconds_bucket", state="FAILED", le="1800.0") == {
        frozenset({("state", "FAILED"), ("le", "1800.0")}): 0.0
    }
    assert series(s, "auton8n_job_iterations_sum", state="FAILED") == {
        frozenset({("state", "FAILED")}): 5.0
    }
    assert series(s, "auton8n_phase_duration_seconds_count", phase="other")
    assert series(s, "auton8n_phase_duration_seconds_count", phase="BUILDING")
    assert len(series(s, "auton8n_phase_duration_seconds_count")) == 8  # 7 phases + other
    assert series(s, "auton8n_model_requests_total", outcome="other")
    assert {dict(k)["kind"]: v for k, v in series(s, "auton8n_model_tokens_total").items()} == {
        "input": 1200.0,
        "output": 0.0,
        "cache_read": 0.0,
        "cache_write": 0.0,
    }
    assert series(s, "auton8n_rate_limited_total") == {
        frozenset({("grpc_method", "CreatePlugin")}): 1.0
    }
    assert series(s, "auton8n_sandbox_kills_total", reason="timeout")
    assert s[("auton8n_jobs_queued", frozenset())] == 7.0
    assert s[("auton8n_jobs_active", frozenset())] == 2.0


def test_rate_limited_method_names_are_capped() -> None:
    m = Metrics(process=False)
    for i in range(200):
        m.rate_limited(f"/x.Y/M{i}")
    assert len(series(scrape(m), "auton8n_rate_limited_total")) == 65  # 64 names + other


def test_registries_are_per_instance_never_the_default() -> None:
    a, b = Metrics(), Metrics()  # would raise "Duplicated timeseries" on a shared registry
    a.job_created()
    assert scrape(a)[("auton8n_jobs_created_total", frozenset())] == 1.0
    assert scrape(b)[("auton8n_jobs_created_total", frozenset())] == 0.0
    assert "auton8n_jobs_created" not in REGISTRY._names_to_collectors
    assert series(scrape(a), "process_resident_memory_bytes")


def test_job_finished_from_a_terminal_job_and_phase_timer() -> None:
    m = Metrics(process=False)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    job = Job(
        id="j1",
        spec=PluginSpec(name="@acme/plugin-time"),
        state=JobState.SUCCEEDED,
        create_time=start,
        update_time=start + timedelta(seconds=95),
        end_time=start + timedelta(seconds=90),
        iteration=3,
    )
    m.job_finished_from(job)
    m.job_finished_from(replace(job, state=JobState.RUNNING))  # not terminal: ignored
    ticks = iter([0.0, 2.0, 7.5, 8.0])
    timer = PhaseTimer(m, clock=lambda: next(ticks))
    timer.enter(Phase.GENERATING)
    timer.enter(Phase.BUILDING)  # GENERATING took 2 s
    timer.enter(Phase.BUILDING)  # a progress update inside the phase: no new phase
    timer.stop()  # BUILDING took 5.5 s
    timer.stop()  # idempotent: nothing open
    s = scrape(m)
    succeeded = frozenset({("state", "SUCCEEDED")})
    assert s[("auton8n_jobs_finished_total", succeeded)] == 1.0
    assert s[("auton8n_job_duration_seconds_sum", succeeded)] == 90.0
    assert s[("auton8n_job_iterations_sum", succeeded)] == 3.0
    assert sum(series(s, "auton8n_jobs_finished_total").values()) == 1.0
    assert s[("auton8n_phase_duration_seconds_sum", frozenset({("phase", "GENERATING")}))] == 2.0
    assert s[("auton8n_phase_duration_seconds_sum", frozenset({("phase", "BUILDING")}))] == 5.5
    assert sum(series(s, "auton8n_phase_duration_seconds_count").values()) == 2.0
