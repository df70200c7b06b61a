"""The job store: every read and write of jobs, events, iterations and artifacts.

Each public method is one transaction. Every change of a job appends exactly one event
in the same transaction (seq = previous + 1). Worker writes are fenced by the lease
token: a worker whose lease was taken over (or whose job was cancelled) gets LeaseLost
and changes nothing.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.domain.events import EventKind, JobEventRecord
from server.domain.job import ArtifactInfo, Job, JobError, utcnow
from server.domain.results import Diagnostic, IterationRecord, TestResults
from server.domain.states import TERMINAL_STATES, JobState, check_transition
from server.errors import FailedPrecondition, NotFound
from server.store.convert import apply_changes, job_from_row, row_from_job
from server.store.shielding import shielded
from server.store.tables import ArtifactRow, EventRow, IterationRow, JobRow

__all__ = ["NOTIFY_CHANNEL", "Claim", "LeaseLost", "Store"]

NOTIFY_CHANNEL = "auton8n_events"  # payload: a job id whose log grew
_CHANGED = "auton8n.changed_jobs"  # session.info key: job ids that got events
_TENANT_LOCK_SPACE = 0x6A6F6273  # advisory-lock key space of per-tenant claims ("jobs")


def _busy_tenants(limit: int) -> Any:
    """Tenants but "" with at least ``limit`` RUNNING jobs (a subquery for claim)."""
    return (
        select(JobRow.tenant)
        .where(JobRow.state == JobState.RUNNING.value, JobRow.tenant != "")
        .group_by(JobRow.tenant)
        .having(func.count() >= limit)
    )


class LeaseLost(Exception):
    """The caller no longer holds the job's lease (taken over, released or job ended)."""


@dataclass(frozen=True)
class Claim:
    job: Job
    token: str  # fencing token for every write of this run
    resumed: bool  # an earlier attempt of this job ran (crash or lost lease)


class Store:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime] = utcnow,
        on_events: Callable[[str], None] | None = None,
    ) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        # Called with a job id after a commit that appended events (wakes watchers).
        self._on_events = on_events or (lambda _job_id: None)
        self._postgres = engine.dialect.name == "postgresql"
        self._inflight: set[asyncio.Future[Any]] = set()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Wait (bounded) for database calls whose callers were cancelled."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout_s)

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        """One write transaction. Jobs that got events are announced after the commit:
        in-process through ``on_events``, to other replicas through NOTIFY (PostgreSQL
        delivers it at commit, so a listener never sees an uncommitted event)."""
        async with self._sessions() as session:
            async with session.begin():
                yield session
                changed: set[str] = session.info.pop(_CHANGED, set())
                if changed and self._postgres:
                    for job_id in sorted(changed):
                        await session.execute(
                            text("SELECT pg_notify(:channel, :job_id)"),
                            {"channel": NOTIFY_CHANNEL, "job_id": job_id},
                        )
            for job_id in sorted(changed):
                self._on_events(job_id)

    @shielded
    async def ping(self) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # -- events -----------------------------------------------------------------

    def _append_event(
        self, session: AsyncSession, row: JobRow, kind: str, detail: dict[str, Any]
    ) -> None:
        now = self._clock()
        session.info.setdefault(_CHANGED, set()).add(row.id)
        row.last_event_seq += 1
        row.update_time = now
        session.add(row)
        session.add(
            EventRow(
                job_id=row.id,
                seq=row.last_event_seq,
                time=now,
                kind=kind,
                detail=detail,
                snapshot=job_from_row(row).to_json(),
            )
        )

    def _set_state(
        self, session: AsyncSession, row: JobRow, target: JobState, reason: str = ""
    ) -> None:
        current = JobState(row.state)
        check_transition(current, target)
        row.state = target.value
        now = self._clock()
        if target is JobState.RUNNING and row.start_time is None:
            row.start_time = now
        if target in TERMINAL_STATES:
            row.end_time = now
            row.lease_owner = row.lease_token = None
            row.lease_expires_at = None
        self._append_event(
            session,
            row,
            EventKind.STATE_CHANGED,
            {"from": current.value, "to": target.value, "reason": reason},
        )

    @shielded
    async def events_after(
        self, job_id: str, after_seq: int, limit: int = 500
    ) -> list[JobEventRecord]:
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(EventRow)
                    .where(EventRow.job_id == job_id, EventRow.seq > after_seq)
                    .order_by(EventRow.seq)
                    .limit(limit)
                )
            ).scalars()
            return [
                JobEventRecord(
                    job_id=r.job_id,
                    seq=r.seq,
                    time=r.time,
                    kind=r.kind,
                    detail=r.detail,
                    job=Job.from_json(r.snapshot),
                )
                for r in rows
            ]

    # -- client-facing ------------------------------------------------------------

    @shielded
    async def create_job(self, job: Job) -> tuple[Job, bool]:
        """Store a new QUEUED job with its first event; returns (job, created).

        Idempotent on (tenant, request_id): a repeat returns the stored job.
        """
        if job.request_id:
            existing = await self._by_request_id(job.tenant, job.request_id)
            if existing is not None:
                return existing, False
        try:
            async with self._tx() as session:
                row = row_from_job(job)
                session.add(row)
                self._append_event(
                    session,
                    row,
                    EventKind.STATE_CHANGED,
                    {"from": None, "to": JobState.QUEUED.value, "reason": "created"},
                )
                created = job_from_row(row)
        except IntegrityError:
            # A concurrent create with the same request_id won the race.
            existing = await self._by_request_id(job.tenant, job.request_id)
            if existing is None:
                raise
            return existing, False
        return created, True

    async def _by_request_id(self, tenant: str, request_id: str) -> Job | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(JobRow).where(JobRow.tenant == tenant, JobRow.request_id == request_id)
                )
            ).scalar_one_or_none()
            return job_from_row(row) if row else None

    async def _row(
        self, session: AsyncSession, job_id: str, tenant: str | None, *, lock: bool = False
    ) -> JobRow:
        """The job's row (NotFound for another tenant); ``lock`` for a write (PostgreSQL
        row lock, so concurrent writers append events one after the other)."""
        row = await session.get(JobRow, job_id, with_for_update=lock)
        if row is None or (tenant is not None and row.tenant != tenant):
            raise NotFound(f"job {job_id!r} not found", reason="JOB_NOT_FOUND")
        return row

    @shielded
    async def get_job(self, job_id: str, tenant: str | None = None) -> Job:
        """The job; NotFound if missing or owned by another tenant (None = any)."""
        async with self._sessions() as session:
            row = await self._row(session, job_id, tenant)
            job = job_from_row(row)
            if job.state is JobState.QUEUED:
                ahead = await session.scalar(
                    select(func.count())
                    .select_from(JobRow)
                    .where(
                        JobRow.state == JobState.QUEUED.value,
                        or_(
                            JobRow.create_time < row.create_time,
                            (JobRow.create_time == row.create_time) & (JobRow.id < row.id),
                        ),
                    )
                )
                job = replace(job, queue_position=int(ahead or 0))
            return job

    @shielded
    async def list_jobs(
        self,
        *,
        tenant: str | None,
        state: JobState | None,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[Job]:
        """Newest first; ``after`` is the (create_time, id) of the last job already seen."""
        query = select(JobRow)
        if tenant is not None:
            query = query.where(JobRow.tenant == tenant)
        if state is not None:
            query = query.where(JobRow.state == state.value)
        if after is not None:
            t, i = after
            query = query.where(
                or_(
                    JobRow.create_time < t,
                    (JobRow.create_time == t) & (JobRow.id < i),
                )
            )
        query = query.order_by(JobRow.create_time.desc(), JobRow.id.desc()).limit(limit)
        async with self._sessions() as session:
            return [job_from_row(r) for r in (await session.execute(query)).scalars()]

    @shielded
    async def cancel_job(self, job_id: str, tenant: str | None, reason: str) -> Job:
        """QUEUED/RUNNING -> CANCELLED for good; FailedPrecondition once finished."""
        async with self._tx() as session:
            row = await self._row(session, job_id, tenant, lock=True)
            if JobState(row.state) in TERMINAL_STATES:
                raise FailedPrecondition(
                    f"job {job_id} already finished as {row.state}", reason="JOB_FINISHED"
                )
            row.error = JobError("CANCELLED", reason, "CANCELLED_BY_CLIENT").to_json()
            self._set_state(session, row, JobState.CANCELLED, reason)
            job = job_from_row(row)
        return job

    @shielded
    async def delete_job(self, job_id: str, tenant: str | None) -> None:
        """Remove a finished job with its events, iterations and artifact."""
        async with self._tx() as session:
            row = await self._row(session, job_id, tenant, lock=True)
            if JobState(row.state) not in TERMINAL_STATES:
                raise FailedPrecondition(
                    f"job {job_id} is {row.state}; cancel it before deleting",
                    reason="JOB_ACTIVE",
                )
            for table in (EventRow, IterationRow, ArtifactRow):
                await session.execute(delete(table).where(table.job_id == job_id))
            await session.delete(row)
            # Announced like an event: caches of the job (here and on other replicas)
            # forget it, and its watchers look again (and find it gone).
            session.info.setdefault(_CHANGED, set()).add(job_id)

    @shielded
    async def get_artifact(self, job_id: str, tenant: str | None) -> tuple[ArtifactInfo, bytes]:
        async with self._sessions() as session:
            row = await self._row(session, job_id, tenant)
            artifact = await session.get(ArtifactRow, job_id)
            if artifact is None:
                raise FailedPrecondition(
                    f"job {job_id} has no artifact (state {row.state})", reason="NO_ARTIFACT"
                )
            return ArtifactInfo(artifact.filename, artifact.size_bytes, artifact.sha256), bytes(
                artifact.data
            )

    # -- worker-facing (fenced by the lease token) ------------------------------------

    @shielded
    async def count_jobs(self, state: JobState) -> int:
        """How many jobs are in ``state`` (all tenants); for the queue-depth gauge."""
        async with self._sessions() as session:
            query = select(func.count()).select_from(JobRow).where(JobRow.state == state.value)
            return int((await session.execute(query)).scalar_one())

    @shielded
    async def claim(
        self, *, owner: str, lease_s: float, max_attempts: int, max_per_tenant: int = 0
    ) -> Claim | None:
        """Take the oldest QUEUED job, or a RUNNING one whose lease expired.

        A job whose expired lease already used ``max_attempts`` fails instead. With
        ``max_per_tenant`` > 0, QUEUED jobs of a tenant that already has that many
        RUNNING jobs (on any replica) are skipped: they wait, keeping their place. The
        anonymous tenant "" (auth off: one shared identity) is not limited per tenant.
        """
        now = self._clock()
        skipped: set[str] = set()  # tenants found at their limit under the tenant lock
        async with self._tx() as session:
            while True:
                queued = JobRow.state == JobState.QUEUED.value
                if max_per_tenant > 0:
                    queued &= JobRow.tenant.not_in(_busy_tenants(max_per_tenant))
                    if skipped:
                        queued &= JobRow.tenant.not_in(sorted(skipped))
                row = (
                    await session.execute(
                        select(JobRow)
                        .where(
                            or_(
                                queued,
                                (JobRow.state == JobState.RUNNING.value)
                                & (JobRow.lease_expires_at < now),
                            )
                        )
                        .order_by(JobRow.create_time, JobRow.id)
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    )
                ).scalar_one_or_none()
                if row is None:
                    return None
                expired = row.state == JobState.RUNNING.value
                if not expired and max_per_tenant > 0 and self._postgres and row.tenant:
                    # Two replicas may pick jobs of one tenant at once: serialize claims
                    # per tenant and count again with what the other one committed.
                    if await self._running_of(session, row.tenant) >= max_per_tenant:
                        skipped.add(row.tenant)
                        continue
                if row.attempt >= max_attempts:
                    row.error = JobError(
                        "ABORTED",
                        f"gave up after {row.attempt} attempts (worker lost each time)",
                        "ATTEMPTS_EXHAUSTED",
                    ).to_json()
                    self._set_state(session, row, JobState.FAILED, "attempts exhausted")
                    continue
                row.attempt += 1
                row.lease_owner = owner
                row.lease_token = secrets.token_hex(16)
                row.lease_expires_at = now + timedelta(seconds=lease_s)
                if expired:
                    self._append_event(
                        session,
                        row,
                        EventKind.LOG,
                        {
                            "message": f"previous worker lost its lease; attempt {row.attempt}"
                            f" on {owner}"
                        },
                    )
                else:
                    self._set_state(
                        session, row, JobState.RUNNING, f"attempt {row.attempt} on {owner}"
                    )
                claim = Claim(job_from_row(row), row.lease_token, resumed=row.attempt > 1)
                break
        return claim

    async def _running_of(self, session: AsyncSession, tenant: str) -> int:
        """RUNNING jobs of ``tenant``, counted under a per-tenant transaction lock
        (PostgreSQL advisory lock, released at commit)."""
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:tenant))"),
            {"space": _TENANT_LOCK_SPACE, "tenant": tenant},
        )
        running = await session.scalar(
            select(func.count())
            .select_from(JobRow)
            .where(JobRow.tenant == tenant, JobRow.state == JobState.RUNNING.value)
        )
        return int(running or 0)

    async def _fenced(self, session: AsyncSession, job_id: str, token: str) -> JobRow:
        row = await session.get(JobRow, job_id, with_for_update=True)
        if row is None or row.lease_token != token or row.state != JobState.RUNNING.value:
            raise LeaseLost(job_id)
        return row

    @shielded
    async def renew(self, job_id: str, token: str, lease_s: float) -> None:
        """Extend the lease (no event); LeaseLost if it is gone."""
        async with self._tx() as session:
            row = await self._fenced(session, job_id, token)
            row.lease_expires_at = self._clock() + timedelta(seconds=lease_s)
            session.add(row)

    @shielded
    async def release(self, job_id: str, token: str, reason: str) -> None:
        """Give the job back (graceful shutdown): RUNNING -> QUEUED, attempt not counted."""
        async with self._tx() as session:
            row = await self._fenced(session, job_id, token)
            row.attempt = max(0, row.attempt - 1)
            row.lease_owner = row.lease_token = None
            row.lease_expires_at = None
            self._set_state(session, row, JobState.QUEUED, reason)

    @shielded
    async def update(
        self, job_id: str, token: str, changes: dict[str, Any], kind: str, detail: dict[str, Any]
    ) -> Job:
        """Apply ``changes`` (domain-typed) and append one event, fenced by ``token``."""
        async with self._tx() as session:
            row = await self._fenced(session, job_id, token)
            apply_changes(row, changes)
            self._append_event(session, row, kind, detail)
            job = job_from_row(row)
        return job

    @shielded
    async def save_iteration(self, job_id: str, token: str, record: IterationRecord) -> Job:
        """Persist an iteration's sources and results, update the job, append its event."""
        async with self._tx() as session:
            row = await self._fenced(session, job_id, token)
            diagnostics = [d.to_json() for d in record.diagnostics]
            tests = record.test_results.to_json() if record.test_results else None
            await session.merge(
                IterationRow(
                    job_id=job_id,
                    iteration=record.iteration,
                    files=record.files,
                    diagnostics=diagnostics,
                    test_results=tests,
                    validation_score=record.validation_score,
                    passed=record.passed,
                    create_time=self._clock(),
                )
            )
            apply_changes(
                row,
                {
                    "iteration": record.iteration,
                    "errors": record.diagnostics,
                    "test_results": record.test_results,
                    "validation_score": record.validation_score,
                },
            )
            self._append_event(
                session,
                row,
                EventKind.ITERATION_FINISHED,
                {
                    "iteration": record.iteration,
                    "passed": record.passed,
                    "errors": diagnostics,
                    "test_results": tests,
                },
            )
            job = job_from_row(row)
        return job

    @shielded
    async def last_iteration(self, job_id: str) -> IterationRecord | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(IterationRow)
                    .where(IterationRow.job_id == job_id)
                    .order_by(IterationRow.iteration.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
            if row is None:
                return None
            return IterationRecord(
                iteration=row.iteration,
                files=dict(row.files),
                diagnostics=tuple(Diagnostic.from_json(d) for d in row.diagnostics),
                test_results=TestResults.from_json(row.test_results) if row.test_results else None,
                validation_score=row.validation_score,
                passed=row.passed,
            )

    @shielded
    async def finish(
        self,
        job_id: str,
        token: str,
        state: JobState,
        *,
        changes: dict[str, Any],
        reason: str,
        artifact: tuple[ArtifactInfo, bytes] | None = None,
    ) -> Job:
        """End the job (terminal ``state``) and store its artifact in one transaction."""
        async with self._tx() as session:
            row = await self._fenced(session, job_id, token)
            if artifact is not None:
                info, data = artifact
                await session.merge(
                    ArtifactRow(
                        job_id=job_id,
                        filename=info.filename,
                        sha256=info.sha256,
                        size_bytes=info.size_bytes,
                        data=data,
                        create_time=self._clock(),
                    )
                )
                changes = {**changes, "artifact": info}
            apply_changes(row, changes)
            self._set_state(session, row, state, reason)
            job = job_from_row(row)
        return job
