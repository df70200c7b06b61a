"""Bad requests get the right status and details, write nothing, and the server keeps serving."""

from __future__ import annotations

import copy
from typing import Any

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.app import App
from tests.conftest import load_spec
from tests.helpers import create_request, error_details

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def spec_with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(load_spec("time"))
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def action(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": "does a thing", **extra}


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "string"}
    for _ in range(depth):
        value = {"inner": value}
    return value


# (case id, request, expected field path prefix)
CREATE_CASES: list[tuple[str, pb.CreatePluginRequest, str]] = [
    ("traversal name", create_request(spec_with(name="@elizaos/../../etc")), "spec.name"),
    ("relative traversal", create_request(spec_with(name="../plugin-x")), "spec.name"),
    ("unscoped name", create_request(spec_with(name="plugin-time")), "spec.name"),
    ("shell metachar name", create_request(spec_with(name="@x/plugin;rm -rf /")), "spec.name"),
    ("backtick name", create_request(spec_with(name="@x/plugin-`id`")), "spec.name"),
    ("whitespace name", create_request(spec_with(name="@x/plugin time")), "spec.name"),
    ("uppercase name", create_request(spec_with(name="@X/Plugin")), "spec.name"),
    ("empty name", create_request(spec_with(name="")), "spec.name"),
    ("huge name", create_request(spec_with(name="@x/" + "a" * 5000)), "spec.name"),
    ("empty description", create_request(spec_with(description="")), "spec.description"),
    ("huge description", create_request(spec_with(description="x" * 10_000)), "spec.description"),
    ("control chars", create_request(spec_with(description="bad\x00\x07")), "spec.description"),
    ("bad version", create_request(spec_with(version="1.0")), "spec.version"),
    ("version injection", create_request(spec_with(version="1.0.0; rm")), "spec.version"),
    ("no components", create_request(spec_with(actions=None, providers=None)), "spec"),
    (
        "action name with space",
        create_request(spec_with(actions=[action("get time")])),
        "spec.actions[0].name",
    ),
    (
        "action name traversal",
        create_request(spec_with(actions=[action("../../x")])),
        "spec.actions[0].name",
    ),
    (
        "duplicate action",
        create_request(spec_with(actions=[action("a"), action("A")])),
        "spec.actions[1].name",
    ),
    (
        "too many actions",
        create_request(spec_with(actions=[action(f"a{i}") for i in range(60)])),
        "spec",
    ),
    (
        "deep parameters",
        create_request(spec_with(actions=[action("deep", parameters=nested(12))])),
        "spec.actions[0].parameters",
    ),
    (
        "bad parameter key",
        create_request(spec_with(actions=[action("a", parameters={"x y": "string"})])),
        "spec.actions[0].parameters",
    ),
    (
        "dependency url",
        create_request(spec_with(dependencies={"left-pad": "git+https://x/y.git"})),
        "spec.dependencies",
    ),
    (
        "dependency name",
        create_request(spec_with(dependencies={"../x": "^1.0.0"})),
        "spec.dependencies",
    ),
    (
        "env name",
        create_request(spec_with(environmentVariables=[{"name": "lower-case"}])),
        "spec.environment_variables[0].name",
    ),
    ("negative iterations", create_request(load_spec("time"), max_iterations=-1), "max_iterations"),
    (
        "too many iterations",
        create_request(load_spec("time"), max_iterations=1000),
        "max_iterations",
    ),
    ("bad model", create_request(load_spec("time"), model="$(curl x)"), "model"),
    ("unknown model", create_request(load_spec("time"), model="gpt-nonexistent"), "model"),
    ("bad request id", create_request(load_spec("time"), request_id="a b"), "request_id"),
    ("no source", pb.CreatePluginRequest(), "source"),
    ("short description", pb.CreatePluginRequest(description="hi"), "description"),
    ("huge description source", pb.CreatePluginRequest(description="word " * 5000), "description"),
]


@pytest.mark.parametrize(
    ("case", "request_", "field"), CREATE_CASES, ids=[c[0] for c in CREATE_CASES]
)
async def test_bad_create_is_rejected_with_field_violations(
    stub: pb_grpc.PluginServiceStub, case: str, request_: pb.CreatePluginRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreatePlugin(request_)
    assert caught.value.code() == INVALID, case
    reason, violations = error_details(caught.value)
    assert reason == "INVALID_ARGUMENT"
    assert any(f.startswith(field) for f, _ in violations), violations
    listed = await stub.ListJobs(pb.ListJobsRequest())
    assert list(listed.jobs) == [], "a rejected request wrote a job"


OTHER_CASES: list[tuple[str, str, Any, grpc.StatusCode, str]] = [
    (
        "get unknown id",
        "GetJob",
        pb.GetJobRequest(job_id="0" * 32),
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    ),
    (
        "get malformed id",
        "GetJob",
        pb.GetJobRequest(job_id="../etc/passwd"),
        INVALID,
        "INVALID_ARGUMENT",
    ),
    ("get empty id", "GetJob", pb.GetJobRequest(job_id=""), INVALID, "INVALID_ARGUMENT"),
    (
        "cancel unknown",
        "CancelJob",
        pb.CancelJobRequest(job_id="f" * 32),
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    ),
    (
        "delete unknown",
        "DeleteJob",
        pb.DeleteJobRequest(job_id="f" * 32),
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    ),
    (
        "download unknown",
        "DownloadArtifact",
        pb.DownloadArtifactRequest(job_id="a" * 32),
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    ),
    (
        "watch unknown",
        "WatchJob",
        pb.WatchJobRequest(job_id="b" * 32),
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    ),
    (
        "malformed page token",
        "ListJobs",
        pb.ListJobsRequest(page_token="!!not-a-token"),
        INVALID,
        "INVALID_PAGE_TOKEN",
    ),
    (
        "forged page token",
        "ListJobs",
        pb.ListJobsRequest(page_token="eyJ0IjogMX0"),
        INVALID,
        "INVALID_PAGE_TOKEN",
    ),
    (
        "negative page size",
        "ListJobs",
        pb.ListJobsRequest(page_size=-5),
        INVALID,
        "INVALID_ARGUMENT",
    ),
    (
        "unknown state filter",
        "ListJobs",
        pb.ListJobsRequest(state=99),
        INVALID,  # type: ignore[arg-type]
        "INVALID_ARGUMENT",
    ),
]


@pytest.mark.parametrize(
    ("case", "method", "request_", "code", "reason"), OTHER_CASES, ids=[c[0] for c in OTHER_CASES]
)
async def test_bad_reads_get_the_right_code(
    stub: pb_grpc.PluginServiceStub,
    case: str,
    method: str,
    request_: Any,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    call = getattr(stub, method)(request_)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        if method in ("WatchJob", "DownloadArtifact"):
            async for _ in call:
                pass
        else:
            await call
    assert caught.value.code() == code, case
    assert error_details(caught.value)[0] == reason


async def test_server_keeps_serving_after_bad_requests(
    app: App, stub: pb_grpc.PluginServiceStub
) -> None:
    for _, request_, _ in CREATE_CASES:
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.CreatePlugin(request_)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    job = await stub.CreatePlugin(create_request(load_spec("time")))
    assert job.state == pb.JOB_STATE_QUEUED
    await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
