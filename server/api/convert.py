"""Proto <-> domain: the one module where wire types and domain types meet."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from auton8n.v1 import plugin_service_pb2 as pb
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from server.domain.events import EventKind, JobEventRecord
from server.domain.job import Job, JobError
from server.domain.results import Diagnostic, TestResults
from server.domain.spec import PluginSpec
from server.domain.states import JobState, Phase
from server.errors import ERROR_DOMAIN

__all__ = [
    "create_request_from_proto",
    "event_to_proto",
    "heartbeat_to_proto",
    "job_to_proto",
    "snapshot_to_proto",
    "spec_from_proto",
    "spec_to_proto",
    "state_from_proto",
]

_STATE_TO_PB = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
_STATE_FROM_PB = {v: k for k, v in _STATE_TO_PB.items()}
_PHASE_TO_PB = {
    Phase.SETUP: pb.PHASE_SETUP,
    Phase.GENERATING: pb.PHASE_GENERATING,
    Phase.BUILDING: pb.PHASE_BUILDING,
    Phase.LINTING: pb.PHASE_LINTING,
    Phase.TESTING: pb.PHASE_TESTING,
    Phase.VALIDATING: pb.PHASE_VALIDATING,
    Phase.PACKAGING: pb.PHASE_PACKAGING,
}


def state_from_proto(value: int) -> JobState | None:
    """None for UNSPECIFIED; ValueError for a number that is no JobState."""
    if value == pb.JOB_STATE_UNSPECIFIED:
        return None
    if value not in _STATE_FROM_PB:
        raise ValueError(f"unknown job state {value}")
    return _STATE_FROM_PB[value]


def spec_from_proto(message: pb.PluginSpec) -> PluginSpec:
    return PluginSpec.from_json(json_format.MessageToDict(message))


def spec_to_proto(spec: PluginSpec) -> pb.PluginSpec:
    return json_format.ParseDict(spec.to_json(), pb.PluginSpec())


def create_request_from_proto(request: pb.CreatePluginRequest) -> dict[str, Any]:
    """The CreateRequest fields (the caller builds the domain object)."""
    source = request.WhichOneof("source")
    return {
        "spec": spec_from_proto(request.spec) if source == "spec" else None,
        "description": request.description if source == "description" else None,
        "model": request.model,
        "max_iterations": request.max_iterations,
        "request_id": request.request_id,
    }


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def diagnostic_to_proto(d: Diagnostic) -> pb.IterationError:
    return pb.IterationError(
        iteration=d.iteration,
        phase=_PHASE_TO_PB[d.phase],
        file=d.file,
        line=d.line,
        column=d.column,
        code=d.code,
        message=d.message,
    )


def test_results_to_proto(t: TestResults) -> pb.TestResults:
    return pb.TestResults(
        total=t.total,
        passed=t.passed,
        failed=t.failed,
        skipped=t.skipped,
        cases=[
            pb.TestCase(
                name=c.name,
                status=c.status,
                message=c.message,
                file=c.file,
                duration_ms=c.duration_ms,
            )
            for c in t.cases
        ],
    )


def job_error_to_status(error: JobError) -> status_pb2.Status:
    code = getattr(grpc.StatusCode, error.code, grpc.StatusCode.UNKNOWN)
    status = status_pb2.Status(code=code.value[0], message=error.message)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))
    return status


def job_to_proto(job: Job) -> pb.Job:
    message = pb.Job(
        id=job.id,
        spec=spec_to_proto(job.spec),
        state=_STATE_TO_PB[job.state],
        phase=_PHASE_TO_PB[job.phase] if job.phase else pb.PHASE_UNSPECIFIED,
        progress_percent=job.progress,
        iteration=job.iteration,
        max_iterations=job.max_iterations,
        model=job.model,
        errors=[diagnostic_to_proto(d) for d in job.errors],
        validation_score=job.validation_score,
        usage=pb.TokenUsage(
            input_tokens=job.usage.input_tokens,
            output_tokens=job.usage.output_tokens,
            cache_read_tokens=job.usage.cache_read_tokens,
            cache_write_tokens=job.usage.cache_write_tokens,
            cost_usd=job.usage.cost_usd,
        ),
        last_event_seq=job.last_event_seq,
        description=job.description,
        request_id=job.request_id,
        attempt=job.attempt,
        queue_position=job.queue_position,
        create_time=_timestamp(job.create_time),
        update_time=_timestamp(job.update_time),
        start_time=_timestamp(job.start_time),
        end_time=_timestamp(job.end_time),
    )
    if job.test_results is not None:
        message.test_results.CopyFrom(test_results_to_proto(job.test_results))
    if job.error is not None:
        message.error.CopyFrom(job_error_to_status(job.error))
    if job.artifact is not None:
        message.artifact.CopyFrom(
            pb.Artifact(
                filename=job.artifact.filename,
                size_bytes=job.artifact.size_bytes,
                sha256=job.artifact.sha256,
            )
        )
    return message


def snapshot_to_proto(job: Job, message: pb.Job | None = None) -> pb.JobEvent:
    """``message``: ``job`` already converted (by ``job_to_proto``), if the caller has it."""
    return pb.JobEvent(
        seq=0,
        time=_timestamp(job.update_time),
        job=message or job_to_proto(job),
        snapshot=pb.Snapshot(),
    )


def heartbeat_to_proto(job: Job, now: datetime, message: pb.Job | None = None) -> pb.JobEvent:
    """``message``: ``job`` already converted (by ``job_to_proto``), if the caller has it."""
    return pb.JobEvent(
        seq=0, time=_timestamp(now), job=message or job_to_proto(job), heartbeat=pb.Heartbeat()
    )


def event_to_proto(event: JobEventRecord) -> pb.JobEvent:
    message = pb.JobEvent(seq=event.seq, time=_timestamp(event.time), job=job_to_proto(event.job))
    d = event.detail
    if event.kind == EventKind.STATE_CHANGED:
        message.state_changed.CopyFrom(
            pb.StateChanged(
                from_state=_STATE_TO_PB[JobState(d["from"])] if d.get("from") else 0,
                to_state=_STATE_TO_PB[JobState(d["to"])],
                reason=d.get("reason", ""),
            )
        )
    elif event.kind == EventKind.PHASE_CHANGED:
        message.phase_changed.CopyFrom(
            pb.PhaseChanged(phase=_PHASE_TO_PB[Phase(d["phase"])], iteration=d.get("iteration", 0))
        )
    elif event.kind == EventKind.LOG:
        message.log.CopyFrom(pb.LogLine(message=d.get("message", "")))
    elif event.kind == EventKind.ITERATION_FINISHED:
        finished = pb.IterationFinished(
            iteration=d.get("iteration", 0),
            passed=bool(d.get("passed")),
            errors=[diagnostic_to_proto(Diagnostic.from_json(e)) for e in d.get("errors") or ()],
        )
        if d.get("test_results"):
            finished.test_results.CopyFrom(
                test_results_to_proto(TestResults.from_json(d["test_results"]))
            )
        message.iteration_finished.CopyFrom(finished)
    return message
