"""The job as the service sees it: what is asked (spec), where it is, and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from server.domain.results import Diagnostic, TestResults, TokenUsage
from server.domain.spec import PluginSpec
from server.domain.states import JobState, Phase

__all__ = ["ArtifactInfo", "Job", "JobError", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobError:
    """Why a job failed or was cancelled. ``code`` is a gRPC status code name."""

    code: str
    message: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "reason": self.reason}


@dataclass(frozen=True)
class ArtifactInfo:
    filename: str
    size_bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "size_bytes": self.size_bytes, "sha256": self.sha256}


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Job:
    id: str
    spec: PluginSpec
    state: JobState
    create_time: datetime
    update_time: datetime
    tenant: str = ""
    phase: Phase | None = None
    progress: int = 0
    iteration: int = 0
    max_iterations: int = 5
    model: str = "template"
    description: str = ""
    request_id: str = ""
    errors: tuple[Diagnostic, ...] = ()
    test_results: TestResults | None = None
    validation_score: int = 0
    error: JobError | None = None
    artifact: ArtifactInfo | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    last_event_seq: int = 0
    attempt: int = 0
    start_time: datetime | None = None
    end_time: datetime | None = None
    # Jobs ahead of this one while QUEUED; computed on read, never stored.
    queue_position: int = -1

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe snapshot (stored with each event)."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "spec": self.spec.to_json(),
            "state": self.state.value,
            "phase": self.phase.value if self.phase else None,
            "progress": self.progress,
            "iteration": self.iteration,
            "max_iterations": self.max_iterations,
            "model": self.model,
            "description": self.description,
            "request_id": self.request_id,
            "errors": [d.to_json() for d in self.errors],
            "test_results": self.test_results.to_json() if self.test_results else None,
            "validation_score": self.validation_score,
            "error": self.error.to_json() if self.error else None,
            "artifact": self.artifact.to_json() if self.artifact else None,
            "usage": self.usage.to_json(),
            "last_event_seq": self.last_event_seq,
            "attempt": self.attempt,
            "create_time": _ts(self.create_time),
            "update_time": _ts(self.update_time),
            "start_time": _ts(self.start_time),
            "end_time": _ts(self.end_time),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        create_time = _dt(data["create_time"])
        update_time = _dt(data.get("update_time")) or create_time
        assert create_time is not None and update_time is not None
        return cls(
            id=data["id"],
            tenant=data.get("tenant", ""),
            spec=PluginSpec.from_json(data["spec"]),
            state=JobState(data["state"]),
            phase=Phase(data["phase"]) if data.get("phase") else None,
            progress=data.get("progress", 0),
            iteration=data.get("iteration", 0),
            max_iterations=data.get("max_iterations", 5),
            model=data.get("model", ""),
            description=data.get("description", ""),
            request_id=data.get("request_id", ""),
            errors=tuple(Diagnostic.from_json(d) for d in data.get("errors") or ()),
            test_results=(
                TestResults.from_json(data["test_results"]) if data.get("test_results") else None
            ),
            validation_score=data.get("validation_score", 0),
            error=JobError(**data["error"]) if data.get("error") else None,
            artifact=ArtifactInfo(**data["artifact"]) if data.get("artifact") else None,
            usage=TokenUsage(**data["usage"]) if data.get("usage") else TokenUsage(),
            last_event_seq=data.get("last_event_seq", 0),
            attempt=data.get("attempt", 0),
            create_time=create_time,
            update_time=update_time,
            start_time=_dt(data.get("start_time")),
            end_time=_dt(data.get("end_time")),
        )
