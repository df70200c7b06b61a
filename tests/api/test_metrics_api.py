"""/metrics of a real server after a few jobs: the standard gRPC series with their labels
and the job series with the right counts, parsed with the Prometheus text parser; and
/healthz following gRPC health.

Skipped until the composition root exposes ``App.metrics_port`` (the wiring of
server/metrics.py into server/app.py; see docs/operations.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from prometheus_client.parser import text_string_to_metric_families

from server.app import App
from tests.conftest import AppFactory, load_spec
from tests.helpers import TERMINAL, create_request, wait_for_state, watch_to_end

pytestmark = pytest.mark.e2e
SERVICE = "auton8n.v1.PluginService"


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        await writer.drain()
        head, _, body = (await asyncio.wait_for(reader.read(), 10)).partition(b"\r\n\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    return int(head.split()[1]), body.decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


async def started(make_app: AppFactory, **overrides: Any) -> App:
    app = await make_app(metrics_address="127.0.0.1:0", **overrides)
    if not getattr(app, "metrics_port", 0):
        pytest.skip("App does not serve metrics yet (server/app.py wiring pending)")
    return app


async def test_metrics_after_a_few_jobs(make_app: AppFactory) -> None:
    app = await started(make_app)
    spec = load_spec("time")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        done = [await stub.CreatePlugin(create_request(spec, request_id=f"m{i}")) for i in (1, 2)]
        await stub.CreatePlugin(create_request(spec, request_id="m1"))  # replay: no new job
        cancelled = await stub.CreatePlugin(create_request(spec, request_id="m3"))
        await stub.CancelJob(pb.CancelJobRequest(job_id=cancelled.id))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetJob(pb.GetJobRequest(job_id="0" * 32))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        for job in done:
            final = await wait_for_state(stub, job.id, TERMINAL)
            assert final.state == pb.JOB_STATE_SUCCEEDED
        watched = await watch_to_end(stub, done[0].id)

    status, text = await http_get(app.metrics_port, "/metrics")
    assert status == 200
    s = samples(text)
    unary = {"grpc_type": "unary", "grpc_service": SERVICE}
    assert (
        s[
            (
                "grpc_server_handled_total",
                labels(**unary, grpc_method="CreatePlugin", grpc_code="OK"),
            )
        ]
        == 4
    )
    assert (
        s[("grpc_server_handled_total", labels(**unary, grpc_method="CancelJob", grpc_code="OK"))]
        == 1
    )
    assert (
        s[
            (
                "grpc_server_handled_total",
                labels(**unary, grpc_method="GetJob", grpc_code="NOT_FOUND"),
            )
        ]
        == 1
    )
    assert s[("grpc_server_started_total", labels(**unary, grpc_method="CreatePlugin"))] == 4
    assert (
        s[("grpc_server_handling_seconds_count", labels(**unary, grpc_method="CreatePlugin"))] == 4
    )
    stream = {"grpc_type": "server_stream", "grpc_service": SERVICE, "grpc_method": "WatchJob"}
    assert s[("grpc_server_handled_total", labels(**stream, grpc_code="OK"))] == 1
    assert s[("grpc_server_msg_sent_total", labels(**stream))] == len(watched)

    assert s[("auton8n_jobs_created_total", frozenset())] == 3
    finished = {
        dict(k)["state"]: v for (n, k), v in s.items() if n == "auton8n_jobs_finished_total"
    }
    assert finished == {"SUCCEEDED": 2, "FAILED": 0, "CANCELLED": 1}
    assert s[("auton8n_job_duration_seconds_count", labels(state="SUCCEEDED"))] == 2
    assert s[("auton8n_job_iterations_sum", labels(state="SUCCEEDED"))] == 2  # one each
    for phase in ("SETUP", "GENERATING", "BUILDING", "TESTING", "PACKAGING"):
        assert s[("auton8n_phase_duration_seconds_count", labels(phase=phase))] == 2, phase
    assert s[("auton8n_jobs_queued", frozenset())] == 0
    assert s[("auton8n_jobs_active", frozenset())] == 0


async def test_healthz_follows_grpc_health(make_app: AppFactory) -> None:
    app = await started(make_app)
    assert await http_get(app.metrics_port, "/healthz") == (200, "SERVING\n")
    assert (await http_get(app.metrics_port, "/nope"))[0] == 404
    stopping = asyncio.create_task(app.stop(grace_s=1.0))
    try:
        # Health goes NOT_SERVING first, the metrics port closes last: 200 turns into
        # 503 or a closed port, never back.
        seen: list[int] = []
        for _ in range(200):
            try:
                seen.append((await http_get(app.metrics_port, "/healthz"))[0])
            except OSError:
                seen.append(0)
            if seen[-1] != 200:
                break
            await asyncio.sleep(0.01)
        assert seen[-1] in (503, 0), seen
    finally:
        await stopping
    with pytest.raises(OSError):
        await http_get(app.metrics_port, "/healthz")
