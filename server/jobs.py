"""The job service: what every RPC does, in domain terms (the servicer only converts)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
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
from server.events import PAGE, EventHub
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
_Read = tuple[int, "asyncio.Future[Job]"]  # (JobCache.epoch when it started, the read)


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
        self._reads: dict[tuple[str, str | None], _Read] = {}  # job reads in flight

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
        """The job; NotFound if missing or another tenant's. A finished job may come from
        the hub's cache (``EventHub.jobs``: dropped on any change or delete)."""
        job_id = _check_id(job_id)
        cache = self._hub.jobs
        cached = cache.get(job_id)
        if cached is not None and (tenant is None or cached.tenant == tenant):
            return cached
        # Calls that miss together share one read, unless something changed since it
        # started (then it may predate a commit the caller has seen: read again).
        key, epoch = (job_id, tenant), cache.epoch
        read = self._reads.get(key)
        if read is None or read[0] != epoch:
            read = (epoch, asyncio.ensure_future(self._store.get_job(job_id, tenant)))
            self._reads[key] = read
            read[1].add_done_callback(functools.partial(self._read_done, key, read))
        return await asyncio.shield(read[1])

    def _read_done(
        self, key: tuple[str, str | None], read: _Read, done: asyncio.Future[Job]
    ) -> None:
        if self._reads.get(key) is read:
            del self._reads[key]
        if not done.cancelled() and done.exception() is None:
            self._hub.jobs.put(done.result(), read[0])

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
        self._hub.wake_all()

    async def watch(
        self, job_id: str, *, tenant: str | None, after_seq: int
    ) -> AsyncIterator[WatchItem]:
        """Snapshot, then stored events with seq > after_seq, then live ones; heartbeats.

        Ends after the terminal event (or at once when the client has seen it).
        Raises Unavailable when the server drains.
        """
        if after_seq < 0:
            raise InvalidArgument("after_seq is negative", [FieldViolation("after_seq", ">= 0")])
        job = await self.get(job_id, tenant=tenant)
        yield Snapshot(job)
        cursor = after_seq
        if job.state in TERMINAL_STATES and cursor >= job.last_event_seq:
            return
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        fetch = functools.partial(self._store.events_after, job.id)
        read_job = functools.partial(self._store.get_job, job.id, tenant)
        poll_s = self._settings.watch_poll_interval_s
        with self._hub.subscribe(job.id, fetch, cursor, poll_s=poll_s) as sub:
            # The first look needs a read that started after this: it then sees every
            # event committed before, here or on another replica.
            not_before: float | None = loop.time()
            while True:
                sub.wake.clear()
                events = await sub.topic.events_after(cursor, not_before=not_before)
                not_before = None
                for event in events:
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
                if len(events) >= PAGE:
                    continue  # more are waiting
                until_heartbeat = self._settings.watch_heartbeat_s - (loop.time() - last_sent)
                if until_heartbeat <= 0:
                    # NotFound once deleted; one read for every watcher due at once.
                    job = await sub.topic.job(tenant, read_job)
                    last_sent = loop.time()
                    yield Heartbeat(job)
                    continue
                # New events (the topic's reads, its poll included) or the drain set the
                # wake-up; a plain timer handle for the heartbeat (not asyncio.timeout:
                # 1,000 streams wait at once).
                timer = loop.call_later(until_heartbeat, sub.wake.set)
                try:
                    await sub.wake.wait()
                finally:
                    timer.cancel()


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
