"""A scripted fake PluginService on a real ``grpc.aio`` server bound to 127.0.0.1:0.

The fake sits at the network boundary: the client and the CLI talk real gRPC to it.
Tests script it through its attributes (``fail``, ``watch_breaks``, ``outcome`` ...)
and read back what it received (``requests``, ``metadata``).
"""

from __future__ import annotations

import copy
import hashlib
import io
import tarfile
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import grpc.aio
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from client import PluginClient, Retry

FAST_RETRY = Retry(
    initial=timedelta(milliseconds=5),
    maximum=timedelta(milliseconds=20),
    timeout=timedelta(seconds=2),
)
TOKEN = "t0k3n"
_TERMINAL = (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED)


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A tar.gz of regular files (folders are implied by the paths)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


PLUGIN_FILES = {
    "plugin-time/package.json": b'{"name": "@elizaos/plugin-time"}',
    "plugin-time/src/index.ts": b"export default {};\n",
}


class Abort(Exception):
    """A scripted failure: the fake aborts the call with a rich google.rpc.Status."""

    def __init__(self, code: grpc.StatusCode, message: str, *details: Message) -> None:
        super().__init__(message)
        self.status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
        for detail in details:
            self.status.details.add().Pack(detail)


def not_found(job_id: str) -> Abort:
    return Abort(
        grpc.StatusCode.NOT_FOUND,
        f"job {job_id} not found",
        error_details_pb2.ErrorInfo(reason="JOB_NOT_FOUND", domain="auton8n.dev"),
    )


class FakeService(pb_grpc.PluginServiceServicer):
    """Keeps jobs in memory and replays a fixed event script per job."""

    token = TOKEN

    @staticmethod
    def error(code: grpc.StatusCode, message: str, *details: Message) -> Abort:
        """A failure to script in ``fail``."""
        return Abort(code, message, *details)

    def __init__(self) -> None:
        self.jobs: dict[str, pb.Job] = {}
        self.events: dict[str, list[pb.JobEvent]] = {}
        self.requests: dict[str, list[Any]] = defaultdict(list)
        self.metadata: list[dict[str, str]] = []
        # method name -> failures raised by its next calls, in order.
        self.fail: dict[str, list[Abort]] = defaultdict(list)
        # WatchJob call k aborts with UNAVAILABLE after sending watch_breaks[k] log events.
        self.watch_breaks: list[int] = []
        # Ignore after_seq and replay from seq 1 (to see the client drop duplicates).
        self.replay_from_start = False
        self.required_token: str | None = TOKEN
        self.outcome: int = pb.JOB_STATE_SUCCEEDED
        self.artifact = tar_gz(PLUGIN_FILES)
        self.artifact_sha: str | None = None  # overrides the real sha256 when set

    async def _enter(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.requests[method].append(request)
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.metadata.append(metadata)
        failure: Abort | None = None
        expected = f"Bearer {self.required_token}"
        if self.required_token is not None and metadata.get("authorization") != expected:
            failure = Abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing or invalid API token",
                error_details_pb2.ErrorInfo(reason="UNAUTHENTICATED", domain="auton8n.dev"),
            )
        elif self.fail[method]:
            failure = self.fail[method].pop(0)
        if failure is not None:
            await context.abort_with_status(rpc_status.to_status(failure.status))

    async def _job(self, job_id: str, context: grpc.aio.ServicerContext) -> pb.Job:
        if job_id not in self.jobs:
            await context.abort_with_status(rpc_status.to_status(not_found(job_id).status))
        return self.jobs[job_id]

    async def CreatePlugin(
        self, request: pb.CreatePluginRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        await self._enter("CreatePlugin", request, context)
        for job in self.jobs.values():
            if request.request_id and job.request_id == request.request_id:
                return job
        if request.spec.name == "bad name":
            violation = error_details_pb2.BadRequest.FieldViolation(
                field="spec.name", description="must look like @scope/plugin-name"
            )
            failure = Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid plugin spec",
                error_details_pb2.BadRequest(field_violations=[violation]),
                error_details_pb2.ErrorInfo(reason="INVALID_SPEC", domain="auton8n.dev"),
            )
            await context.abort_with_status(rpc_status.to_status(failure.status))
        job = pb.Job(
            id=f"job-{len(self.jobs) + 1}",
            state=pb.JOB_STATE_QUEUED,
            model=request.model or "template",
            max_iterations=request.max_iterations or 5,
            request_id=request.request_id,
            description=request.description,
        )
        job.create_time.GetCurrentTime()
        if request.HasField("spec"):
            job.spec.CopyFrom(request.spec)
        else:
            job.spec.name = "@test/plugin-described"
        self.jobs[job.id] = job
        self.events[job.id] = script_events(job, self.outcome)
        return job

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        await self._enter("GetJob", request, context)
        return await self._job(request.job_id, context)

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        await self._enter("ListJobs", request, context)
        jobs = [j for j in reversed(self.jobs.values()) if request.state in (0, j.state)]
        start = int(request.page_token or 0)
        end = start + (request.page_size or 50)
        return pb.ListJobsResponse(
            jobs=jobs[start:end], next_page_token=str(end) if end < len(jobs) else ""
        )

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.Job:
        await self._enter("CancelJob", request, context)
        job = await self._job(request.job_id, context)
        if job.state in _TERMINAL:
            failure = Abort(grpc.StatusCode.FAILED_PRECONDITION, "job already finished")
            await context.abort_with_status(rpc_status.to_status(failure.status))
        job.state = pb.JOB_STATE_CANCELLED
        return job

    async def DeleteJob(
        self, request: pb.DeleteJobRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        await self._enter("DeleteJob", request, context)
        await self._job(request.job_id, context)
        del self.jobs[request.job_id]
        return empty_pb2.Empty()

    async def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.JobEvent]:
        call = len(self.requests["WatchJob"])
        await self._enter("WatchJob", request, context)
        job = await self._job(request.job_id, context)
        yield pb.JobEvent(job=job, snapshot=pb.Snapshot())
        after = 0 if self.replay_from_start else request.after_seq
        sent = 0
        for event in self.events[request.job_id]:
            if event.seq <= after:
                continue
            if call < len(self.watch_breaks) and sent == self.watch_breaks[call]:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "server is draining")
            yield event
            yield pb.JobEvent(job=event.job, heartbeat=pb.Heartbeat())
            sent += 1
            self.jobs[request.job_id] = event.job

    async def DownloadArtifact(
        self, request: pb.DownloadArtifactRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ArtifactChunk]:
        await self._enter("DownloadArtifact", request, context)
        await self._job(request.job_id, context)
        data = self.artifact
        sha = self.artifact_sha or hashlib.sha256(data).hexdigest()
        for start in range(0, len(data), 100):
            last = start + 100 >= len(data)
            yield pb.ArtifactChunk(
                data=data[start : start + 100], sha256=sha if last else "", total_size=len(data)
            )


def script_events(job: pb.Job, outcome: int) -> list[pb.JobEvent]:
    """The event log of a job that runs one iteration and ends in ``outcome``."""
    steps: list[tuple[int, int, int, Message]] = [
        (pb.JOB_STATE_RUNNING, pb.PHASE_SETUP, 5, pb.StateChanged(to_state=pb.JOB_STATE_RUNNING)),
        (pb.JOB_STATE_RUNNING, pb.PHASE_GENERATING, 20, pb.PhaseChanged(iteration=1)),
        (pb.JOB_STATE_RUNNING, pb.PHASE_GENERATING, 30, pb.LogLine(message="wrote 5 files")),
        (pb.JOB_STATE_RUNNING, pb.PHASE_BUILDING, 45, pb.PhaseChanged(iteration=1)),
        (pb.JOB_STATE_RUNNING, pb.PHASE_TESTING, 60, pb.PhaseChanged(iteration=1)),
        (pb.JOB_STATE_RUNNING, pb.PHASE_PACKAGING, 90, pb.PhaseChanged(iteration=1)),
        (outcome, pb.PHASE_PACKAGING, 100, pb.StateChanged(to_state=outcome)),
    ]
    events = []
    current = copy.deepcopy(job)
    current.iteration = 1
    for seq, (state, phase, percent, detail) in enumerate(steps, start=1):
        current.state, current.phase, current.progress_percent = state, phase, percent
        current.last_event_seq = seq
        if state == pb.JOB_STATE_SUCCEEDED:
            current.test_results.CopyFrom(pb.TestResults(total=4, passed=4))
            current.validation_score = 92
            current.artifact.CopyFrom(pb.Artifact(filename="plugin-time-1.0.0.tgz", sha256="ab12"))
        elif state == pb.JOB_STATE_FAILED:
            current.test_results.CopyFrom(pb.TestResults(total=4, passed=3, failed=1))
            current.errors.add(iteration=1, file="src/index.ts", line=3, code="TS2322")
            current.error.CopyFrom(
                status_pb2.Status(code=code_pb2.ABORTED, message="gave up [/bold]")
            )
        event = pb.JobEvent(seq=seq, job=current)
        field = {
            pb.StateChanged: "state_changed",
            pb.PhaseChanged: "phase_changed",
            pb.LogLine: "log",
        }[type(detail)]
        getattr(event, field).CopyFrom(detail)
        if isinstance(detail, pb.PhaseChanged):
            event.phase_changed.phase = phase
        events.append(event)
    return events


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
async def target(fake: FakeService) -> AsyncIterator[str]:
    server = grpc.aio.server()
    pb_grpc.add_PluginServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


@pytest.fixture
async def client(target: str) -> AsyncIterator[PluginClient]:
    async with PluginClient(target, token=TOKEN, retry=FAST_RETRY) as plugin_client:
        yield plugin_client
