"""The tables (SQLAlchemy declarative). Nested values are JSON columns; times are tz-aware
UTC. A column's Python default is set when the row is constructed.

Plain SQLAlchemy, not SQLModel: SQLModel brings pydantic into the server process
(~8 MB of its idle memory, BENCHMARKS.md) for nothing the store uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiTokenRow",
    "ArtifactRow",
    "Base",
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


class Base(DeclarativeBase):
    def __init__(self, **values: Any) -> None:
        """SQLAlchemy's keyword constructor, but a column's Python default is set at once
        (code reads ``row.last_event_seq`` of a new row before any flush)."""
        for column in self.__table__.columns:
            default = column.default
            if column.key not in values and default is not None and default.is_scalar:
                values[column.key] = default.arg
        cls = type(self)
        for key, value in values.items():
            if not hasattr(cls, key):
                raise TypeError(f"{key!r} is not an attribute of {cls.__name__}")
            setattr(self, key, value)


def _str(length: int | None = None, **kw: Any) -> Any:
    return mapped_column(String(length), nullable=False, **kw)


def _opt_str(length: int) -> Any:
    return mapped_column(String(length), nullable=True)


def _int(**kw: Any) -> Any:
    return mapped_column(Integer, nullable=False, **kw)


def _ts(nullable: bool = False) -> Any:
    return mapped_column(UTCDateTime(), nullable=nullable)


def _json() -> Any:
    return mapped_column(JSON, nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant", "request_id", name="uq_jobs_tenant_request"),
        Index("ix_jobs_state_create", "state", "create_time"),
        Index("ix_jobs_tenant_create", "tenant", "create_time"),
    )

    id: Mapped[str] = _str(40, primary_key=True)
    tenant: Mapped[str] = _str(128, default="")
    request_id: Mapped[str | None] = _opt_str(128)
    state: Mapped[str] = _str(16)
    phase: Mapped[str | None] = _opt_str(16)
    progress: Mapped[int] = _int(default=0)
    iteration: Mapped[int] = _int(default=0)
    max_iterations: Mapped[int] = _int(default=5)
    model: Mapped[str] = _str(128, default="template")
    description: Mapped[str] = _str(default="")
    spec: Mapped[dict[str, Any]] = _json()
    errors: Mapped[list[dict[str, Any]] | None] = _json()
    test_results: Mapped[dict[str, Any] | None] = _json()
    validation_score: Mapped[int] = _int(default=0)
    error: Mapped[dict[str, Any] | None] = _json()
    artifact: Mapped[dict[str, Any] | None] = _json()
    usage: Mapped[dict[str, Any] | None] = _json()
    last_event_seq: Mapped[int] = _int(default=0)
    attempt: Mapped[int] = _int(default=0)
    # Lease: who runs the job, the fencing token of that run, and until when.
    lease_owner: Mapped[str | None] = _opt_str(128)
    lease_token: Mapped[str | None] = _opt_str(64)
    lease_expires_at: Mapped[datetime | None] = _ts(nullable=True)
    create_time: Mapped[datetime] = _ts()
    update_time: Mapped[datetime] = _ts()
    start_time: Mapped[datetime | None] = _ts(nullable=True)
    end_time: Mapped[datetime | None] = _ts(nullable=True)


class EventRow(Base):
    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_events_job_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = _str(40, index=True)
    seq: Mapped[int] = _int()
    time: Mapped[datetime] = _ts()
    kind: Mapped[str] = _str(32)
    detail: Mapped[dict[str, Any]] = _json()
    # The job as it was right after this event (Job.to_json()).
    snapshot: Mapped[dict[str, Any]] = _json()


class ArtifactRow(Base):
    __tablename__ = "artifacts"

    job_id: Mapped[str] = _str(40, primary_key=True)
    filename: Mapped[str] = _str(255)
    sha256: Mapped[str] = _str(64)
    size_bytes: Mapped[int] = _int()
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    create_time: Mapped[datetime] = _ts()


class IterationRow(Base):
    """One finished iteration's sources and results, so a job can resume from it."""

    __tablename__ = "iterations"

    job_id: Mapped[str] = _str(40, primary_key=True)
    iteration: Mapped[int] = _int(primary_key=True, autoincrement=False)
    files: Mapped[dict[str, str]] = _json()
    diagnostics: Mapped[list[dict[str, Any]]] = _json()
    test_results: Mapped[dict[str, Any] | None] = _json()
    validation_score: Mapped[int] = _int(default=0)
    passed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    create_time: Mapped[datetime] = _ts()


class ApiTokenRow(Base):
    """An API token: only the sha256 of its secret part is stored (see server.auth.tokens)."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_tenant", "tenant"),)

    id: Mapped[str] = _str(32, primary_key=True)  # public part of the token
    secret_sha256: Mapped[str] = _str(64)  # hex digest of the secret part
    tenant: Mapped[str] = _str(128)
    name: Mapped[str] = _str(128, default="")
    role: Mapped[str] = _str(16)  # server.auth.Role value
    create_time: Mapped[datetime] = _ts()
    revoke_time: Mapped[datetime | None] = _ts(nullable=True)  # set once: revoked for good


class RateBucketRow(Base):
    """One token bucket shared by every replica (PostgreSQL, where the migration makes
    the table UNLOGGED: disposable state, no WAL; see server.auth.buckets)."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = _str(200, primary_key=True)  # "<bucket>:<client>"
    tokens: Mapped[float] = mapped_column(Float, nullable=False)  # tokens left at updated_s
    # seconds since the epoch (the database's clock) of the last check
    updated_s: Mapped[float] = mapped_column(Float, nullable=False)
    admitted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


metadata = Base.metadata
