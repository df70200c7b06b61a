"""Housekeeping: retention purge, leftover workspaces, online SQLite backup."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from loguru import logger
from sqlalchemy import delete, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from server.domain.job import utcnow
from server.domain.states import TERMINAL_STATES
from server.store.tables import ArtifactRow, EventRow, IterationRow, JobRow

__all__ = ["backup_sqlite", "purge_finished_jobs", "remove_stale_workspaces", "run_retention"]

_BATCH = 500
_JOB_DIR = re.compile(r"[0-9a-f]{32}")


async def purge_finished_jobs(engine: AsyncEngine, *, older_than: datetime) -> int:
    """Delete finished jobs that ended before ``older_than``, with their events,
    iterations and artifacts, in batches (short transactions). Returns how many."""
    purged = 0
    terminal = [s.value for s in TERMINAL_STATES]
    while True:
        async with engine.begin() as conn:
            ids = list(
                (
                    await conn.execute(
                        select(JobRow.id)
                        .where(JobRow.state.in_(terminal))
                        .where(JobRow.end_time < older_than)
                        .limit(_BATCH)
                    )
                ).scalars()
            )
            if not ids:
                return purged
            for table in (EventRow, IterationRow, ArtifactRow):
                await conn.execute(delete(table).where(table.job_id.in_(ids)))
            await conn.execute(delete(JobRow).where(JobRow.id.in_(ids)))
        purged += len(ids)


async def run_retention(engine: AsyncEngine, *, keep: timedelta, every: timedelta) -> None:
    """Purge finished jobs older than ``keep``, every ``every``, until cancelled."""
    while True:
        try:
            purged = await purge_finished_jobs(engine, older_than=utcnow() - keep)
            if purged:
                logger.info("retention: purged {} finished job(s) older than {}", purged, keep)
        except Exception:
            logger.exception("retention purge failed; will retry")
        await asyncio.sleep(every.total_seconds())


async def remove_stale_workspaces(engine: AsyncEngine, root: Path) -> int:
    """Delete workspaces left behind by a crash: those of jobs that finished or no longer
    exist. A job still QUEUED or RUNNING keeps its folder (another replica sharing the
    folder may be running it; whoever claims it next starts it afresh). Returns how many."""
    names = await asyncio.to_thread(_job_dirs, root)
    if not names:
        return 0
    terminal = {s.value for s in TERMINAL_STATES}
    async with engine.connect() as conn:
        rows = await conn.execute(select(JobRow.id, JobRow.state).where(JobRow.id.in_(names)))
        states = {job_id: state for job_id, state in rows.all()}
    stale = [name for name in names if name not in states or states[name] in terminal]
    for name in stale:
        await asyncio.to_thread(shutil.rmtree, root / name, True)
    if stale:
        logger.info("removed {} leftover workspace(s) under {}", len(stale), root)
    return len(stale)


def _job_dirs(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return [p.name for p in root.iterdir() if _JOB_DIR.fullmatch(p.name)]


def _copy(source: Path, destination: Path) -> None:
    if not source.exists():
        raise FileNotFoundError(f"no database at {source}")
    if destination.exists():
        raise FileExistsError(f"{destination} exists; refusing to overwrite it")
    destination.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(destination)
        try:
            src.backup(dst)  # consistent snapshot, also while the server writes (WAL)
        finally:
            dst.close()
    finally:
        src.close()


async def backup_sqlite(database_url: str, destination: Path) -> Path:
    """Write a consistent copy of the SQLite database to ``destination`` (online)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise ValueError("backup copies SQLite databases; use pg_dump for PostgreSQL")
    await asyncio.to_thread(_copy, Path(url.database), destination)
    return destination
