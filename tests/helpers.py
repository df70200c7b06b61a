"""Small test helpers: error details, watching a job to its end."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

TERMINAL = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}


def error_details(error: grpc.aio.AioRpcError) -> tuple[str, list[tuple[str, str]]]:
    """(ErrorInfo.reason, BadRequest field violations) of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    reason, violations = "", []
    assert status is not None, f"no google.rpc.Status details on {error.code()}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
    return reason, violations


def create_request(spec: dict[str, Any], **fields: Any) -> pb.CreatePluginRequest:
    request = pb.CreatePluginRequest(**fields)
    json_format.ParseDict(spec, request.spec)
    return request


async def watch_to_end(
    stub: pb_grpc.PluginServiceStub, job_id: str, after_seq: int = 0, timeout: float = 240
) -> list[pb.JobEvent]:
    """Every message of one WatchJob stream until it ends OK."""
    events: list[pb.JobEvent] = []

    async def consume() -> None:
        async for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id, after_seq=after_seq)):
            events.append(event)

    await asyncio.wait_for(consume(), timeout)
    return events


async def wait_for_state(
    stub: pb_grpc.PluginServiceStub, job_id: str, states: set[int], timeout: float = 240
) -> pb.Job:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        # wait_for_ready: right after a restart the process-wide subchannel may still be
        # in reconnect backoff from the old server; fail-fast would report it.
        job = await stub.GetJob(pb.GetJobRequest(job_id=job_id), wait_for_ready=True)
        if job.state in states:
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job stayed {pb.JobState.Name(job.state)}")
        await asyncio.sleep(0.1)
