"""Job domain objects <-> table rows (the only place that knows both)."""

from __future__ import annotations

import enum
from dataclasses import asdict
from typing import Any

from server.domain.job import ArtifactInfo, Job, JobError
from server.domain.results import Diagnostic, TestResults, TokenUsage
from server.store.tables import JobRow

__all__ = ["apply_changes", "job_from_row", "row_from_job"]


def job_from_row(row: JobRow) -> Job:
    return Job.from_json(
        {
            "id": row.id,
            "tenant": row.tenant,
            "spec": row.spec,
            "state": row.state,
            "phase": row.phase,
            "progress": row.progress,
            "iteration": row.iteration,
            "max_iterations": row.max_iterations,
            "model": row.model,
            "description": row.description,
            "request_id": row.request_id or "",
            "errors": row.errors or [],
            "test_results": row.test_results,
            "validation_score": row.validation_score,
            "error": row.error,
            "artifact": row.artifact,
            "usage": row.usage,
            "last_event_seq": row.last_event_seq,
            "attempt": row.attempt,
            "create_time": row.create_time.isoformat(),
            "update_time": row.update_time.isoformat(),
            "start_time": row.start_time.isoformat() if row.start_time else None,
            "end_time": row.end_time.isoformat() if row.end_time else None,
        }
    )


def row_from_job(job: Job) -> JobRow:
    row = JobRow(
        id=job.id,
        tenant=job.tenant,
        request_id=job.request_id or None,
        state=job.state.value,
        spec=job.spec.to_json(),
        create_time=job.create_time,
        update_time=job.update_time,
    )
    apply_changes(
        row,
        {
            "max_iterations": job.max_iterations,
            "model": job.model,
            "description": job.description,
            "usage": job.usage,
        },
    )
    return row


def _column_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, TestResults | ArtifactInfo | JobError | TokenUsage):
        return value.to_json() if hasattr(value, "to_json") else asdict(value)
    if isinstance(value, tuple) and all(isinstance(v, Diagnostic) for v in value):
        return [d.to_json() for d in value]
    return value


def apply_changes(row: JobRow, changes: dict[str, Any]) -> None:
    """Set domain-typed values (enums, result objects) on the row's columns."""
    for name, value in changes.items():
        if not hasattr(row, name):
            raise AttributeError(f"jobs has no column {name!r}")
        setattr(row, name, _column_value(value))
