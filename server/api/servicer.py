"""auton8n.v1.PluginService: thin methods that convert and call the job service."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

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
T = TypeVar("T")
R = TypeVar("R")


class _Memo(Generic[T, R]):
    """``convert(obj)`` remembered for the last ``size`` objects, by identity.

    The job service hands out one object per stored version where it can (a cached
    finished job; an event that every watcher of the job gets), so each is converted once,
    not once per call or stream. An entry holds its object, so its id is not reused
    while the entry lives. The messages are shared: nothing may change them.
    """

    def __init__(self, convert: Callable[[T], R], size: int) -> None:
        self._convert = convert
        self._size = size
        self._items: OrderedDict[int, tuple[T, R]] = OrderedDict()

    def __call__(self, obj: T) -> R:
        hit = self._items.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        result = self._convert(obj)
        self._items[id(obj)] = (obj, result)
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return result


class PluginServicer(pb_grpc.PluginServiceServicer):  # type: ignore[misc]
    """``identify``: the caller of the current RPC (default: the principal the
    AuthInterceptor established; refused when there is none)."""

    def __init__(
        self, jobs: JobService, *, identify: Callable[[], Principal] = current_principal
    ) -> None:
        self._jobs = jobs
        self._identify = identify
        self._job_pb = _Memo(convert.job_to_proto, 256)
        self._event_pb = _Memo(convert.event_to_proto, 1024)

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
        return self._job_pb(await self._jobs.get(request.job_id, tenant=self._scope()))

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
                yield convert.snapshot_to_proto(item.job, self._job_pb(item.job))
            elif isinstance(item, Heartbeat):
                yield convert.heartbeat_to_proto(item.job, utcnow(), self._job_pb(item.job))
            else:
                yield self._event_pb(item)

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
