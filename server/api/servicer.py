"""auton8n.v1.PluginService: thin methods that convert and call the job service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2

from server.api import convert
from server.domain.job import utcnow
from server.errors import FieldViolation, InvalidArgument
from server.jobs import CreateRequest, Heartbeat, JobService, Snapshot

__all__ = ["PluginServicer"]

CHUNK_BYTES = 64 * 1024
Context = grpc.aio.ServicerContext[Any, Any]


def tenant_of(context: Context) -> str | None:
    """The caller's tenant ("" = the anonymous local tenant)."""
    return ""


class PluginServicer(pb_grpc.PluginServiceServicer):  # type: ignore[misc]
    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs

    async def CreatePlugin(self, request: pb.CreatePluginRequest, context: Context) -> pb.Job:
        try:
            fields = convert.create_request_from_proto(request)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument("spec is malformed", [FieldViolation("spec", str(exc))]) from exc
        job = await self._jobs.create(CreateRequest(**fields), tenant=tenant_of(context) or "")
        return convert.job_to_proto(job)

    async def GetJob(self, request: pb.GetJobRequest, context: Context) -> pb.Job:
        return convert.job_to_proto(await self._jobs.get(request.job_id, tenant=tenant_of(context)))

    async def ListJobs(self, request: pb.ListJobsRequest, context: Context) -> pb.ListJobsResponse:
        try:
            state = convert.state_from_proto(request.state)
        except ValueError as exc:
            raise InvalidArgument(str(exc), [FieldViolation("state", str(exc))]) from exc
        jobs, token = await self._jobs.list(
            tenant=tenant_of(context),
            state=state,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListJobsResponse(
            jobs=[convert.job_to_proto(j) for j in jobs], next_page_token=token
        )

    async def CancelJob(self, request: pb.CancelJobRequest, context: Context) -> pb.Job:
        job = await self._jobs.cancel(request.job_id, tenant=tenant_of(context))
        return convert.job_to_proto(job)

    async def DeleteJob(self, request: pb.DeleteJobRequest, context: Context) -> empty_pb2.Empty:
        await self._jobs.delete(request.job_id, tenant=tenant_of(context))
        return empty_pb2.Empty()

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Context
    ) -> AsyncIterator[pb.JobEvent]:
        items = self._jobs.watch(
            request.job_id, tenant=tenant_of(context), after_seq=request.after_seq
        )
        async for item in items:
            if isinstance(item, Snapshot):
                yield convert.snapshot_to_proto(item.job)
            elif isinstance(item, Heartbeat):
                yield convert.heartbeat_to_proto(item.job, utcnow())
            else:
                yield convert.event_to_proto(item)

    async def DownloadArtifact(
        self, request: pb.DownloadArtifactRequest, context: Context
    ) -> AsyncIterator[pb.ArtifactChunk]:
        info, data = await self._jobs.artifact(request.job_id, tenant=tenant_of(context))
        for start in range(0, max(len(data), 1), CHUNK_BYTES):
            last = start + CHUNK_BYTES >= len(data)
            yield pb.ArtifactChunk(
                data=data[start : start + CHUNK_BYTES],
                sha256=info.sha256 if last else "",
                total_size=len(data),
            )
