"""The rate limiter on a real server: refusals carry RetryInfo, QuotaFailure, ErrorInfo and
the retry trailers; a grpc client honouring the pushback gets through after it; failed
creates give their token back; watches are capped; health and reflection are exempt."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from server.app import App
from server.auth.principal import client_key
from tests.auth.helpers import bearer, issue
from tests.conftest import AppFactory, load_spec
from tests.helpers import create_request, error_details

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def details(error: grpc.aio.AioRpcError) -> dict[str, object]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found: dict[str, object] = {}
    for kind in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.RetryInfo,
        error_details_pb2.QuotaFailure,
    ):
        for detail in status.details:
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.__name__] = message
    return found


def trailers(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {k: v for k, v in error.trailing_metadata() or () if isinstance(v, str)}


async def test_create_bucket_refuses_with_every_detail(make_app: AppFactory) -> None:
    # 2 per hour, burst 2: the third create waits 1800 s for its token.
    app = await make_app(rate_limit_create_per_hour=2, rate_limit_create_burst=2)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        spec = load_spec("time")
        jobs = [await stub.CreatePlugin(create_request(spec)) for _ in range(2)]
        before = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreatePlugin(create_request(spec))
        elapsed = time.monotonic() - before + 1.0  # the two creates took a moment too
        for job in jobs:
            await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
    error = caught.value
    assert error.code() == EXHAUSTED
    found = details(error)
    info = found["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, info.metadata["bucket"]) == (
        "RATE_LIMITED",
        "auton8n.dev",
        "create",
    )
    retry = found["RetryInfo"]
    assert isinstance(retry, error_details_pb2.RetryInfo)
    delay = retry.retry_delay.ToTimedelta().total_seconds()
    assert 1800 - elapsed <= delay <= 1800  # the time until the next token (1 per 1800 s)
    quota = found["QuotaFailure"]
    assert isinstance(quota, error_details_pb2.QuotaFailure)
    assert quota.violations[0].subject == "client:peer:127.0.0.1"
    assert "CreatePlugin: 2 per hour, burst 2" in quota.violations[0].description
    meta = trailers(error)
    assert int(meta["grpc-retry-pushback-ms"]) == pytest.approx(delay * 1000, abs=1)
    assert int(meta["retry-after"]) == pytest.approx(delay, abs=1)
    assert meta["x-ratelimit-limit"] == "2" and meta["x-ratelimit-remaining"] == "0"
    assert 3600 - elapsed <= int(meta["x-ratelimit-reset"]) <= 3601
    assert (
        app.metrics.registry.get_sample_value(
            "auton8n_rate_limited_total", {"grpc_method": "CreatePlugin"}
        )
        == 1
    )


async def test_rejected_creates_give_their_token_back(make_app: AppFactory) -> None:
    app = await make_app(rate_limit_create_per_hour=1, rate_limit_create_burst=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        for _ in range(5):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.CreatePlugin(create_request(load_spec("time"), model="$(x)"))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        job = await stub.CreatePlugin(create_request(load_spec("time")))
        await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreatePlugin(create_request(load_spec("time")))
        assert caught.value.code() == EXHAUSTED


async def test_a_grpc_client_honouring_the_pushback_gets_through(make_app: AppFactory) -> None:
    """grpc's own retry policy reads grpc-retry-pushback-ms: the call succeeds once the
    next token is there, and not before."""
    app = await make_app(rate_limit_requests_per_s=2, rate_limit_requests_burst=1)
    config = {
        "methodConfig": [
            {
                "name": [{"service": "auton8n.v1.PluginService"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.01s",
                    "maxBackoff": "0.01s",
                    "backoffMultiplier": 1,
                    "retryableStatusCodes": ["RESOURCE_EXHAUSTED"],
                },
            }
        ]
    }
    options = [("grpc.service_config", json.dumps(config)), ("grpc.enable_retries", 1)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}", options=options) as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        await stub.ListJobs(pb.ListJobsRequest())  # takes the only token
        started = time.monotonic()
        await stub.ListJobs(pb.ListJobsRequest())  # refused, retried after the pushback
        waited = time.monotonic() - started
    assert 0.45 <= waited < 2.0, waited  # one token per 0.5 s
    refused = app.metrics.registry.get_sample_value(
        "auton8n_rate_limited_total", {"grpc_method": "ListJobs"}
    )
    assert refused == 1


async def test_tokens_have_their_own_buckets(make_app: AppFactory) -> None:
    app = await make_app(
        auth_mode="required", rate_limit_requests_per_s=0.01, rate_limit_requests_burst=3
    )
    alice, bob = await issue(app, "alice"), await issue(app, "bob")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        for _ in range(3):
            await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(alice))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(alice))
        assert caught.value.code() == EXHAUSTED
        quota = details(caught.value)["QuotaFailure"]
        assert isinstance(quota, error_details_pb2.QuotaFailure)
        alice_id = alice.split("_")[1]
        assert quota.violations[0].subject == f"client:token:{alice_id}"
        assert alice not in str(caught.value.details()) + repr(caught.value.trailing_metadata())
        for _ in range(3):
            await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(bob))


async def test_health_and_reflection_are_exempt(make_app: AppFactory) -> None:
    app = await make_app(rate_limit_requests_per_s=0.01, rate_limit_requests_burst=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(20):
            reply = await health.Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # health Watch writes with context.write: it streams through every interceptor.
        watch = health.Watch(health_pb2.HealthCheckRequest())
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        stub = pb_grpc.PluginServiceStub(channel)
        await stub.ListJobs(pb.ListJobsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListJobs(pb.ListJobsRequest())
        assert caught.value.code() == EXHAUSTED
        assert error_details(caught.value)[0] == "RATE_LIMITED"


@pytest.fixture
async def watched_job(make_app: AppFactory) -> AsyncIterator[tuple[App, str]]:
    app = await make_app(max_watches_per_client=2)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        job = await stub.CreatePlugin(create_request(load_spec("time")))
        yield app, job.id
        await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))


async def test_concurrent_watches_are_capped_per_client(
    watched_job: tuple[App, str],
) -> None:
    app, job_id = watched_job
    limiter = app.rate_limiter
    assert limiter is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        open_ = [stub.WatchJob(pb.WatchJobRequest(job_id=job_id)) for _ in range(2)]
        for call in open_:
            assert (await call.read()).HasField("snapshot")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job_id)):
                pass
        assert caught.value.code() == EXHAUSTED
        assert error_details(caught.value)[0] == "TOO_MANY_WATCHES"
        assert trailers(caught.value)["x-ratelimit-limit"] == "2"
        open_[0].cancel()
        key = client_key(None, "ipv4:127.0.0.1:1")
        for _ in range(100):  # the server sees the cancellation a moment later
            if limiter.open_watches(key) < 2:
                break
            await asyncio.sleep(0.02)
        again = stub.WatchJob(pb.WatchJobRequest(job_id=job_id))
        assert (await again.read()).HasField("snapshot")
        again.cancel()
        open_[1].cancel()


def test_client_keys() -> None:
    assert client_key("abc", "ipv4:1.2.3.4:5") == "token:abc"
    assert client_key(None, "ipv4:10.0.0.7:51234") == "peer:10.0.0.7"
    assert client_key(None, "ipv6:[::1]:51234") == "peer:::1"
    assert client_key(None, "unix:/tmp/s") == "peer:/tmp/s"
