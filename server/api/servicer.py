"""auton8n.v1.PluginService: thin methods that convert and call the job service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2, json_format

from server.api import convert
from server.auth.principal import Principal, current_principal
from server.domain.job import utcnow
from server.errors import FieldViolation, InvalidArgument
from server.jobs import CreateRequest, Heartbeat, JobService, Snapshot

__all__ = ["PluginServicer"]

CHUNK_BYTES = 64 * 1024
Context = grpc.aio.ServicerContext[Any, Any]


class PluginServicer(pb_grpc.PluginServiceServicer):  # type: ignore[misc]
    """``identify``: the caller of the current RPC (default: the principal the
    AuthInterceptor established; refused when there is none)."""

    def __init__(
        self, jobs: JobService, *, identify: Callable[[], Principal] = current_principal
    ) -> None:
        self._jobs = jobs
        self._identify = identify

    def _scope(self) -> str | None:
        """The tenant whose jobs the caller may see and change; None: every tenant (admin).

        Another tenant's job is NOT_FOUND (the store filters by tenant), never
        PERMISSION_DENIED: a caller cannot even learn that a job id exists.
        """
        return self._identify().scope

    async def CreatePlugin(self, request: pb.CreatePluginRequest, context: Context) -> pb.Job:
        try:
            fields = convert.create_request_from_proto(request)
        except (TypeError, ValueError, json_format.Error) as exc:  # e.g. NaN in a Struct
            raise InvalidArgument("spec is malformed", [FieldViolation("spec", str(exc))]) from exc
        job = await self._jobs.create(CreateRequest(**fields), tenant=self._identify().tenant)
        return convert.job_to_proto(job)

    async def GetJob(self, request: pb.GetJobRequest, context: Context) -> pb.Job:
        return convert.job_to_proto(await self._jobs.get(request.job_id, tenant=self._scope()))

    async def ListJobs(self, request: pb.ListJobsRequest, context: Context) -> pb.ListJobsResponse:
        try:
            state = convert.state_from_proto(request.state)
        except ValueError as exc:
            raise InvalidArgument(str(exc), [FieldViolation("state", str(exc))]) from exc
        jobs, token = await self._jobs.list(
            tenant=self._scope(),
            state=state,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListJobsResponse(
            jobs=[convert.job_to_proto(j) for j in jobs], next_page_token=token
        )

    async def CancelJob(self, request: pb.CancelJobRequest, context: Context) -> pb.Job:
        job = await self._jobs.cancel(request.job_id, tenant=self._scope())
        return convert.job_to_proto(job)

    async def DeleteJob(self, request: pb.DeleteJobRequest, context: Context) -> empty_pb2.Empty:
        await self._jobs.delete(request.job_id, tenant=self._scope())
        return empty_pb2.Empty()

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: Context
    ) -> AsyncIterator[pb.JobEvent]:
        items = self._jobs.watch(request.job_id, tenant=self._scope(), after_seq=request.after_seq)
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
        info, data = await self._jobs.artifact(request.job_id, tenant=self._scope())
        for start in range(0, max(len(data), 1), CHUNK_BYTES):
            last = start + CHUNK_BYTES >= len(data)
            yield pb.ArtifactChunk(
                data=data[start : start + CHUNK_BYTES],
                sha256=info.sha256 if last else "",
                total_size=len(data),
            )
