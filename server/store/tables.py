"""SQLModel tables. Nested values are JSON columns; times are tz-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

__all__ = [
    "ApiTokenRow",
    "ArtifactRow",
    "EventRow",
    "IterationRow",
    "JobRow",
    "RateBucketRow",
    "metadata",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns tz-aware datetimes (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


def _ts(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _json() -> Any:
    return Field(default=None, sa_column=Column(JSON, nullable=True))


class JobRow(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant", "request_id", name="uq_jobs_tenant_request"),
        Index("ix_jobs_state_create", "state", "create_time"),
        Index("ix_jobs_tenant_create", "tenant", "create_time"),
    )

    id: str = Field(primary_key=True, max_length=40)
    tenant: str = Field(default="", max_length=128)
    request_id: str | None = Field(default=None, max_length=128)
    state: str = Field(max_length=16)
    phase: str | None = Field(default=None, max_length=16)
    progress: int = 0
    iteration: int = 0
    max_iterations: int = 5
    model: str = Field(default="template", max_length=128)
    description: str = ""
    spec: dict[str, Any] = _json()
    errors: list[dict[str, Any]] | None = _json()
    test_results: dict[str, Any] | None = _json()
    validation_score: int = 0
    error: dict[str, Any] | None = _json()
    artifact: dict[str, Any] | None = _json()
    usage: dict[str, Any] | None = _json()
    last_event_seq: int = 0
    attempt: int = 0
    # Lease: who runs the job, the fencing token of that run, and until when.
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_token: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = _ts(nullable=True)
    create_time: datetime = _ts()
    update_time: datetime = _ts()
    start_time: datetime | None = _ts(nullable=True)
    end_time: datetime | None = _ts(nullable=True)


class EventRow(SQLModel, table=True):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_events_job_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=40, index=True)
    seq: int
    time: datetime = _ts()
    kind: str = Field(max_length=32)
    detail: dict[str, Any] = _json()
    # The job as it was right after this event (Job.to_json()).
    snapshot: dict[str, Any] = _json()


class ArtifactRow(SQLModel, table=True):
    __tablename__ = "artifacts"

    job_id: str = Field(primary_key=True, max_length=40)
    filename: str = Field(max_length=255)
    sha256: str = Field(max_length=64)
    size_bytes: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    create_time: datetime = _ts()


class IterationRow(SQLModel, table=True):
    """One finished iteration's sources and results, so a job can resume from it."""

    __tablename__ = "iterations"

    job_id: str = Field(primary_key=True, max_length=40)
    iteration: int = Field(primary_key=True)
    files: dict[str, str] = _json()
    diagnostics: list[dict[str, Any]] = _json()
    test_results: dict[str, Any] | None = _json()
    validation_score: int = 0
    passed: bool = False
    create_time: datetime = _ts()


class ApiTokenRow(SQLModel, table=True):
    """An API token: only the sha256 of its secret part is stored (see server.auth.tokens)."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_tenant", "tenant"),)

    id: str = Field(primary_key=True, max_length=32)  # public part of the token
    secret_sha256: str = Field(max_length=64)  # hex digest of the secret part
    tenant: str = Field(max_length=128)
    name: str = Field(default="", max_length=128)
    role: str = Field(max_length=16)  # server.auth.Role value
    create_time: datetime = _ts()
    revoke_time: datetime | None = _ts(nullable=True)  # set once: revoked for good


class RateBucketRow(SQLModel, table=True):
    """One token bucket shared by every replica (PostgreSQL, where the migration makes
    the table UNLOGGED: disposable state, no WAL; see server.auth.buckets)."""

    __tablename__ = "rate_buckets"

    key: str = Field(primary_key=True, max_length=200)  # "<bucket>:<client>"
    tokens: float  # tokens left at updated_s
    updated_s: float  # seconds since the epoch (the database's clock) of the last check
    admitted: bool = True  # whether the last check took a token


metadata = SQLModel.metadata
