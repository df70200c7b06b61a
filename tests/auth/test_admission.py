"""Admission control in the store: at most M RUNNING jobs per tenant over all replicas;
only active jobs count; waiting jobs keep a visible queue position; names never block."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from server.domain.job import Job
from server.domain.spec import PluginSpec
from server.domain.states import JobState
from server.store.engine import create_engine
from server.store.migrate import migrate
from server.store.repository import Store
from tests.conftest import load_spec


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield Store(engine, clock=Clock())
    await engine.dispose()


def new_job(tenant: str, spec: str = "time") -> Job:
    now = datetime.now(UTC)
    return Job(
        id=uuid.uuid4().hex,
        spec=PluginSpec.from_json(load_spec(spec)),
        state=JobState.QUEUED,
        create_time=now,
        update_time=now,
        tenant=tenant,
    )


async def claim(store: Store, limit: int = 2) -> Job | None:
    got = await store.claim(owner="w", lease_s=30, max_attempts=3, max_per_tenant=limit)
    return got.job if got else None


async def test_a_tenant_at_its_limit_waits_and_others_go_first(store: Store) -> None:
    a = [(await store.create_job(new_job("a")))[0] for _ in range(3)]
    b, _ = await store.create_job(new_job("b"))
    first, second, third = (await claim(store), await claim(store), await claim(store))
    assert [j.id for j in (first, second, third) if j] == [a[0].id, a[1].id, b.id]
    assert await claim(store) is None, "a has 2 running: its third job must wait"
    waiting = await store.get_job(a[2].id)
    assert waiting.state is JobState.QUEUED and waiting.queue_position == 0

    # Only active jobs count: once one of a's jobs ends (any way), the third runs.
    await store.cancel_job(a[0].id, None, "done")
    fourth = await claim(store)
    assert fourth is not None and fourth.id == a[2].id


async def test_finished_jobs_never_count(store: Store) -> None:
    for _ in range(3):
        job, _ = await store.create_job(new_job("a"))
        assert (await claim(store, limit=1)) is not None
        await store.cancel_job(job.id, "a", "stop")
    job, _ = await store.create_job(new_job("a"))
    claimed = await claim(store, limit=1)
    assert claimed is not None and claimed.id == job.id


async def test_the_anonymous_tenant_is_not_limited_per_tenant(store: Store) -> None:
    """Auth off: every job is tenant "" (one shared identity); only the replica's own
    limit (the worker's semaphore) applies."""
    for _ in range(4):
        await store.create_job(new_job(""))
    assert all([await claim(store, limit=1) for _ in range(4)])


async def test_without_a_limit_every_job_is_claimed(store: Store) -> None:
    for _ in range(4):
        await store.create_job(new_job("a"))
    got = [await store.claim(owner="w", lease_s=30, max_attempts=3) for _ in range(4)]
    assert all(got)


async def test_a_failed_or_cancelled_job_never_blocks_its_plugin_name(store: Store) -> None:
    first, _ = await store.create_job(new_job("a"))
    await store.cancel_job(first.id, "a", "changed my mind")
    second, created = await store.create_job(new_job("a"))
    assert created and second.spec.name == first.spec.name
    claimed = await store.claim(owner="w", lease_s=30, max_attempts=3)
    assert claimed is not None
    await store.finish(second.id, claimed.token, JobState.FAILED, changes={}, reason="x")
    third, created = await store.create_job(new_job("a"))
    assert created and third.state is JobState.QUEUED
    # Even a job of the same name still active does not block a new one.
    fourth, created = await store.create_job(new_job("a"))
    assert created and fourth.id != third.id


async def test_replicas_claiming_at_once_respect_the_tenant_limit(database_url: str) -> None:
    """Several stores (replicas) race to claim a tenant's jobs: never more than the limit."""
    engines = [create_engine(database_url) for _ in range(3)]
    try:
        await migrate(engines[0])
        stores = [Store(engine) for engine in engines]
        for _ in range(8):
            await stores[0].create_job(new_job("a"))
        results = await asyncio.gather(
            *(
                stores[i % 3].claim(owner=f"r{i % 3}", lease_s=30, max_attempts=3, max_per_tenant=2)
                for i in range(12)
            )
        )
        assert sum(r is not None for r in results) == 2
        assert await stores[0].count_jobs(JobState.RUNNING) == 2
    finally:
        for engine in engines:
            await engine.dispose()
