"""Retention purge (SQLite and PostgreSQL) and online SQLite backup."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from client.cli import run
from server.domain.job import Job
from server.domain.spec import PluginSpec
from server.domain.states import JobState
from server.errors import NotFound
from server.store.engine import create_engine
from server.store.maintenance import backup_sqlite, purge_finished_jobs, remove_stale_workspaces
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


async def test_leftover_workspaces_of_finished_or_unknown_jobs_are_removed(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    store = Store(engine)
    root = tmp_path / "workspaces"
    try:
        running, _ = await store.create_job(job(datetime.now(UTC)))
        finished, _ = await store.create_job(job(datetime.now(UTC)))
        await store.cancel_job(finished.id, None, "done")
        unknown = uuid.uuid4().hex
        for name in (running.id, finished.id, unknown, "not-a-job"):
            (root / name / "src").mkdir(parents=True)
            (root / name / "src" / "index.ts").write_text("export {}")

        assert await remove_stale_workspaces(engine, root) == 2
        assert sorted(p.name for p in root.iterdir()) == sorted([running.id, "not-a-job"])
        assert await remove_stale_workspaces(engine, root) == 0
        assert await remove_stale_workspaces(engine, tmp_path / "missing") == 0
    finally:
        await engine.dispose()


def test_backup_command_writes_a_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert run(["tokens", "--data-dir", str(data), "create", "--tenant", "acme"], environ={}) == 0
    capsys.readouterr()
    copy = tmp_path / "copy.db"
    assert run(["--json", "backup", "--data-dir", str(data), str(copy)], environ={}) == 0
    written = json.loads(capsys.readouterr().out)
    assert written == {"path": str(copy), "bytes": copy.stat().st_size}
    with sqlite3.connect(copy) as conn:
        assert [row[0] for row in conn.execute("SELECT tenant FROM api_tokens")] == ["acme"]
    # Bad input: one line on stderr and exit 2, nothing overwritten.
    assert run(["backup", "--data-dir", str(data), str(copy)], environ={}) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    missing = ["backup", "--data-dir", str(tmp_path / "none"), str(tmp_path / "x.db")]
    assert run(missing, environ={}) == 2
    assert "no database" in capsys.readouterr().err
    pg = "postgresql+psycopg://u@127.0.0.1/db"
    assert run(["backup", "--database-url", pg, str(tmp_path / "y.db")], environ={}) == 2
    assert "pg_dump" in capsys.readouterr().err
