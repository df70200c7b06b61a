"""Failed authentications are budgeted per peer: past the burst, RESOURCE_EXHAUSTED with
retry details, no token lookup, and the budget refills as the math says."""

from __future__ import annotations

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.auth.buckets import BucketPolicy
from server.auth.failures import FailureThrottle
from server.errors import ResourceExhausted
from tests.auth.helpers import bearer, issue
from tests.conftest import AppFactory
from tests.helpers import error_details


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_budget_blocks_then_refills() -> None:
    clock = Clock()
    throttle = FailureThrottle(BucketPolicy("auth_failures", 3, 0.5), clock=clock)
    for _ in range(3):
        throttle.check("peer:a")
        await throttle.failed("peer:a")
    with pytest.raises(ResourceExhausted) as caught:
        await throttle.failed("peer:a")  # the 4th failure
    assert caught.value.retry_after is not None
    assert caught.value.retry_after.total_seconds() == pytest.approx(2.0)
    clock.now += 1.5
    with pytest.raises(ResourceExhausted) as blocked:
        throttle.check("peer:a")  # still blocked: 0.5 s left, before any lookup
    assert blocked.value.retry_after is not None
    assert blocked.value.retry_after.total_seconds() == pytest.approx(0.5)
    throttle.check("peer:b")  # other peers are not affected
    clock.now += 0.5
    throttle.check("peer:a")  # one token back: one more failure allowed
    await throttle.failed("peer:a")
    with pytest.raises(ResourceExhausted):
        await throttle.failed("peer:a")


async def test_a_bad_token_flood_is_cut_off(make_app: AppFactory) -> None:
    app = await make_app(auth_mode="required", auth_failures_per_minute=6, auth_failures_burst=5)
    good = await issue(app, "alice")
    bad = bearer("a8n_000000000000_" + "x" * 40)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        codes = []
        for _ in range(8):
            try:
                await stub.ListJobs(pb.ListJobsRequest(), metadata=bad)
            except grpc.aio.AioRpcError as error:
                codes.append(error.code())
                last = error
        exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [exhausted] * 3
        reason, *_ = error_details(last)
        assert reason == "TOO_MANY_AUTH_FAILURES"
        trailers = dict(last.trailing_metadata() or ())
        assert 1 <= int(trailers["retry-after"]) <= 10
        assert 0 < int(trailers["grpc-retry-pushback-ms"]) <= 10_000
        # While blocked, the address is refused even with a good token.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(good))
        assert caught.value.code() == exhausted
        # Health stays open for probes.
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
