"""The job service: what every RPC does, in domain terms (the servicer only converts)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from loguru import logger

from server.domain.events import EventKind, JobEventRecord
from server.domain.job import ArtifactInfo, Job, utcnow
from server.domain.spec import PluginSpec
from server.domain.states import TERMINAL_STATES, JobState
from server.domain.validation import (
    FieldViolation,
    ValidationLimits,
    validate_request_fields,
    validate_spec,
)
from server.errors import InvalidArgument, Unavailable
from server.events import EventHub
from server.generators.registry import GeneratorRegistry, UnknownModel
from server.metrics import Metrics
from server.settings import Settings
from server.store.repository import Store

__all__ = ["CreateRequest", "Heartbeat", "JobService", "Snapshot", "WatchItem"]

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class CreateRequest:
    spec: PluginSpec | None
    description: str | None
    model: str = ""
    max_iterations: int = 0
    request_id: str = ""


@dataclass(frozen=True)
class Snapshot:
    job: Job


@dataclass(frozen=True)
class Heartbeat:
    job: Job


WatchItem = Snapshot | Heartbeat | JobEventRecord


class JobService:
    def __init__(
        self,
        *,
        store: Store,
        hub: EventHub,
        generators: GeneratorRegistry,
        settings: Settings,
        describe: Callable[[str], Awaitable[PluginSpec]],
        interrupt: Callable[[str, str], bool],
        metrics: Metrics,
    ) -> None:
        self._store = store
        self._hub = hub
        self._generators = generators
        self._settings = settings
        self._describe = describe  # description -> spec (offline heuristic or model)
        self._interrupt = interrupt  # stops a job's task in this replica
        self._metrics = metrics
        self._limits = ValidationLimits(
            max_components=settings.max_spec_components,
            max_description_chars=settings.max_description_chars,
            max_struct_depth=settings.max_struct_depth,
            max_iterations=settings.max_iterations_limit,
        )
        self._draining = asyncio.Event()

    # -- create ------------------------------------------------------------------

    async def create(self, request: CreateRequest, *, tenant: str) -> Job:
        """Validate everything, store the job durably (QUEUED), wake the worker.

        Raises InvalidArgument with every field violation found.
        """
        if self._draining.is_set():
            raise Unavailable("server is shutting down", reason="DRAINING")
        violations = validate_request_fields(
            model=request.model,
            max_iterations=request.max_iterations,
            request_id=request.request_id,
            description=request.description,
            limits=self._limits,
        )
        model = request.model or self._settings.default_model
        try:
            self._generators.check(model)
        except UnknownModel as exc:
            violations.append(FieldViolation("model", str(exc)))
        spec = request.spec
        if spec is None and request.description is None:
            violations.append(FieldViolation("source", "set either spec or description"))
        if spec is not None:
            violations += validate_spec(spec, self._limits)
        elif request.description is not None and not violations:
            spec = await self._describe(request.description)
            violations += validate_spec(spec, self._limits, prefix="description(derived spec)")
        if violations or spec is None:
            raise InvalidArgument("the request is invalid", violations)
        now = utcnow()
        job = Job(
            id=uuid.uuid4().hex,
            tenant=tenant,
            spec=spec,
            state=JobState.QUEUED,
            create_time=now,
            update_time=now,
            max_iterations=request.max_iterations or self._settings.default_max_iterations,
            model=model,
            description=request.description or "",
            request_id=request.request_id,
        )
        job, created = await self._store.create_job(job)
        if created:
            self._metrics.job_created()
            logger.bind(job_id=job.id).info("job created for {}", spec.name)
            self._hub.wake_worker()
        return job

    # -- read ----------------------------------------------------------------------

    async def get(self, job_id: str, *, tenant: str | None) -> Job:
        return await self._store.get_job(_check_id(job_id), tenant)

    async def list(
        self, *, tenant: str | None, state: JobState | None, page_size: int, page_token: str
    ) -> tuple[list[Job], str]:
        """A page of jobs newest first and the token of the next page ("" at the end)."""
        if page_size < 0:
            raise InvalidArgument(
                "page_size is negative", [FieldViolation("page_size", "must be >= 0")]
            )
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_token(page_token, state) if page_token else None
        jobs = await self._store.list_jobs(tenant=tenant, state=state, limit=size + 1, after=after)
        if len(jobs) <= size:
            return jobs, ""
        jobs = jobs[:size]
        return jobs, _encode_token(jobs[-1], state)

    async def artifact(self, job_id: str, *, tenant: str | None) -> tuple[ArtifactInfo, bytes]:
        return await self._store.get_artifact(_check_id(job_id), tenant)

    # -- change ---------------------------------------------------------------------

    async def cancel(self, job_id: str, *, tenant: str | None) -> Job:
        """CANCELLED for good, and the job's processes killed if it runs here."""
        job = await self._store.cancel_job(_check_id(job_id), tenant, "cancelled by client")
        self._metrics.job_finished_from(job)
        self._interrupt(job.id, "cancel")
        logger.bind(job_id=job.id).info("job cancelled")
        return job

    async def delete(self, job_id: str, *, tenant: str | None) -> None:
        await self._store.delete_job(_check_id(job_id), tenant)

    # -- watch -----------------------------------------------------------------------

    def drain(self) -> None:
        """End every watch stream with UNAVAILABLE (clients resume elsewhere)."""
        self._draining.set()

    async def watch(
        self, job_id: str, *, tenant: str | None, after_seq: int
    ) -> AsyncIterator[WatchItem]:
        """Snapshot, then stored events with seq > after_seq, then live ones; heartbeats.

        Ends after the terminal event (or at once when the client has seen it).
        Raises Unavailable when the server drains.
        """
        if after_seq < 0:
            raise InvalidArgument("after_seq is negative", [FieldViolation("after_seq", ">= 0")])
        job = await self._store.get_job(_check_id(job_id), tenant)
        yield Snapshot(job)
        cursor = after_seq
        if job.state in TERMINAL_STATES and cursor >= job.last_event_seq:
            return
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        with self._hub.subscribe(job.id) as wake:
            while True:
                wake.clear()
                for event in await self._store.events_after(job.id, cursor):
                    cursor = event.seq
                    job = event.job
                    last_sent = loop.time()
                    yield event
                    if event.kind == EventKind.STATE_CHANGED and event.job.state in TERMINAL_STATES:
                        return
                if self._draining.is_set():
                    raise Unavailable(
                        "server is shutting down; resume with after_seq", reason="DRAINING"
                    )
                until_heartbeat = self._settings.watch_heartbeat_s - (loop.time() - last_sent)
                if until_heartbeat <= 0:
                    job = await self._store.get_job(job.id, tenant)  # NotFound once deleted
                    last_sent = loop.time()
                    yield Heartbeat(job)
                    continue
                timeout = min(self._settings.watch_poll_interval_s, until_heartbeat)
                drained = asyncio.ensure_future(self._draining.wait())
                woken = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait(
                        {drained, woken}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for f in (drained, woken):
                        f.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await f


def _check_id(job_id: str) -> str:
    if not job_id or len(job_id) > 40 or not job_id.isalnum():
        raise InvalidArgument(
            "job_id is malformed",
            [FieldViolation("job_id", "a job id as returned by CreatePlugin")],
        )
    return job_id


def _encode_token(last: Job, state: JobState | None) -> str:
    raw = json.dumps(
        {"t": last.create_time.isoformat(), "i": last.id, "s": state.value if state else ""}
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_token(token: str, state: JobState | None) -> tuple[datetime, str]:
    bad = InvalidArgument(
        "page_token is malformed",
        [FieldViolation("page_token", "use next_page_token from the previous response")],
        reason="INVALID_PAGE_TOKEN",
    )
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created = datetime.fromisoformat(data["t"])
        job_id = str(data["i"])
        filtered = str(data["s"])
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise bad from exc
    if created.tzinfo is None or filtered != (state.value if state else ""):
        raise InvalidArgument(
            "page_token belongs to another query",
            [FieldViolation("page_token", "the state filter changed; start from the first page")],
            reason="INVALID_PAGE_TOKEN",
        )
    return created, job_id
