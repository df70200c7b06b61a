"""The store on a real SQLite database: seq, idempotency, leases and fencing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from server.domain.events import EventKind
from server.domain.job import ArtifactInfo, Job
from server.domain.results import IterationRecord
from server.domain.spec import PluginSpec
from server.domain.states import JobState, Phase
from server.errors import FailedPrecondition, NotFound
from server.store.engine import create_engine
from server.store.migrate import migrate
from server.store.repository import LeaseLost, Store
from tests.conftest import load_spec


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield Store(engine, clock=clock)
    await engine.dispose()


def new_job(clock: Clock, request_id: str = "", tenant: str = "") -> Job:
    now = clock()
    return Job(
        id=uuid.uuid4().hex,
        spec=PluginSpec.from_json(load_spec("time")),
        state=JobState.QUEUED,
        create_time=now,
        update_time=now,
        request_id=request_id,
        tenant=tenant,
    )


async def test_create_is_durable_and_idempotent(store: Store, clock: Clock) -> None:
    job, created = await store.create_job(new_job(clock, request_id="r1"))
    again, created_again = await store.create_job(new_job(clock, request_id="r1"))
    assert created and not created_again and again.id == job.id
    stored = await store.get_job(job.id)
    assert stored.spec == job.spec and stored.last_event_seq == 1
    assert stored.create_time.tzinfo is not None


async def test_concurrent_creates_with_one_request_id_make_one_job(
    store: Store, clock: Clock
) -> None:
    results = await asyncio.gather(*(store.create_job(new_job(clock, "same")) for _ in range(8)))
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_event_seq_is_consecutive_and_snapshots_match(store: Store, clock: Clock) -> None:
    job, _ = await store.create_job(new_job(clock))
    claim = await store.claim(owner="w", lease_s=30, max_attempts=3)
    assert claim is not None and claim.job.id == job.id and claim.job.state is JobState.RUNNING
    for phase in (Phase.SETUP, Phase.GENERATING, Phase.BUILDING):
        await store.update(
            job.id,
            claim.token,
            {"phase": phase},
            EventKind.PHASE_CHANGED,
            {"phase": phase.value, "iteration": 1},
        )
    await store.save_iteration(
        job.id, claim.token, IterationRecord(iteration=1, files={"a.ts": "x"}, passed=True)
    )
    await store.finish(
        job.id,
        claim.token,
        JobState.SUCCEEDED,
        changes={"progress": 100},
        reason="ok",
        artifact=(ArtifactInfo("p.tgz", 3, "abc"), b"abc"),
    )
    events = await store.events_after(job.id, 0)
    assert [e.seq for e in events] == list(range(1, 8))
    assert [e.job.last_event_seq for e in events] == list(range(1, 8))
    assert events[-1].job.state is JobState.SUCCEEDED and events[-1].job.progress == 100
    assert [e.seq for e in await store.events_after(job.id, 5)] == [6, 7]
    info, data = await store.get_artifact(job.id, None)
    assert data == b"abc" and info.sha256 == "abc"


async def test_cancel_is_final_and_fences_the_worker(store: Store, clock: Clock) -> None:
    job, _ = await store.create_job(new_job(clock))
    claim = await store.claim(owner="w", lease_s=30, max_attempts=3)
    assert claim is not None
    cancelled = await store.cancel_job(job.id, None, "cancelled by client")
    assert cancelled.state is JobState.CANCELLED
    with pytest.raises(LeaseLost):
        await store.update(job.id, claim.token, {"progress": 50}, EventKind.LOG, {"message": "x"})
    with pytest.raises(LeaseLost):
        await store.finish(job.id, claim.token, JobState.SUCCEEDED, changes={}, reason="late")
    with pytest.raises(FailedPrecondition):
        await store.cancel_job(job.id, None, "again")
    assert (await store.get_job(job.id)).state is JobState.CANCELLED


async def test_expired_lease_is_taken_over_and_old_token_fenced(store: Store, clock: Clock) -> None:
    job, _ = await store.create_job(new_job(clock))
    first = await store.claim(owner="a", lease_s=1, max_attempts=3)
    assert first is not None
    assert await store.claim(owner="b", lease_s=1, max_attempts=3) is None  # lease still held
    clock.now += timedelta(seconds=5)
    second = await store.claim(owner="b", lease_s=30, max_attempts=3)
    assert second is not None and second.job.id == job.id and second.resumed
    assert second.job.attempt == 2
    with pytest.raises(LeaseLost):
        await store.renew(job.id, first.token, 30)
    await store.renew(job.id, second.token, 30)


async def test_attempts_are_bounded(store: Store, clock: Clock) -> None:
    job, _ = await store.create_job(new_job(clock))
    for _ in range(2):
        assert await store.claim(owner="a", lease_s=1, max_attempts=2) is not None
        clock.now += timedelta(seconds=5)
    assert await store.claim(owner="a", lease_s=1, max_attempts=2) is None
    failed = await store.get_job(job.id)
    assert failed.state is JobState.FAILED and failed.error is not None
    assert failed.error.reason == "ATTEMPTS_EXHAUSTED"


async def test_release_requeues_without_counting_an_attempt(store: Store, clock: Clock) -> None:
    job, _ = await store.create_job(new_job(clock))
    claim = await store.claim(owner="a", lease_s=30, max_attempts=3)
    assert claim is not None
    await store.release(job.id, claim.token, "shutdown")
    released = await store.get_job(job.id)
    assert released.state is JobState.QUEUED and released.attempt == 0
    assert released.queue_position == 0


async def test_delete_requires_a_finished_job_and_removes_everything(
    store: Store, clock: Clock
) -> None:
    job, _ = await store.create_job(new_job(clock))
    with pytest.raises(FailedPrecondition):
        await store.delete_job(job.id, None)
    await store.cancel_job(job.id, None, "x")
    await store.delete_job(job.id, None)
    with pytest.raises(NotFound):
        await store.get_job(job.id)
    assert await store.events_after(job.id, 0) == []


async def test_other_tenants_get_not_found(store: Store, clock: Clock) -> None:
    job, _ = await store.create_job(new_job(clock, tenant="a"))
    with pytest.raises(NotFound):
        await store.get_job(job.id, "b")
    assert await store.list_jobs(tenant="b", state=None, limit=10) == []
    assert len(await store.list_jobs(tenant="a", state=None, limit=10)) == 1
