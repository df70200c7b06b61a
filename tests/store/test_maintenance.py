"""Retention purge (SQLite and PostgreSQL) and online SQLite backup."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.domain.job import Job
from server.domain.spec import PluginSpec
from server.domain.states import JobState
from server.errors import NotFound
from server.store.engine import create_engine
from server.store.maintenance import backup_sqlite, purge_finished_jobs
from server.store.migrate import migrate
from server.store.repository import Store
from tests.conftest import load_spec


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def job(now: datetime) -> Job:
    spec = PluginSpec.from_json(load_spec("time"))
    return Job(
        id=uuid.uuid4().hex, spec=spec, state=JobState.QUEUED, create_time=now, update_time=now
    )


async def test_purge_removes_only_old_finished_jobs(database_url: str) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    clock = Clock()
    store = Store(engine, clock=clock)
    try:
        old, _ = await store.create_job(job(clock.now))
        await store.cancel_job(old.id, None, "old")
        active, _ = await store.create_job(job(clock.now))
        clock.now += timedelta(days=10)
        recent, _ = await store.create_job(job(clock.now))
        await store.cancel_job(recent.id, None, "recent")

        purged = await purge_finished_jobs(engine, older_than=clock.now - timedelta(days=7))
        assert purged == 1
        with pytest.raises(NotFound):
            await store.get_job(old.id)
        assert await store.events_after(old.id, 0) == []
        assert (await store.get_job(active.id)).state is JobState.QUEUED
        assert (await store.get_job(recent.id)).state is JobState.CANCELLED
    finally:
        await engine.dispose()


async def test_backup_is_a_consistent_copy(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    engine = create_engine(url)
    await migrate(engine)
    store = Store(engine)
    try:
        created, _ = await store.create_job(job(datetime.now(UTC)))
        copy = await backup_sqlite(url, tmp_path / "backup" / "copy.db")
        with sqlite3.connect(copy) as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM jobs")]
        assert ids == [created.id]
        with pytest.raises(FileExistsError):
            await backup_sqlite(url, copy)
        with pytest.raises(ValueError, match="pg_dump"):
            await backup_sqlite("postgresql+psycopg://x@127.0.0.1/db", tmp_path / "x.db")
    finally:
        await engine.dispose()
