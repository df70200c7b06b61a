"""Schema migrations (Alembic) for SQLite and PostgreSQL, run by the server on start.

A database already at the newest revision (every start but the first after an upgrade)
is recognised without Alembic: the scripts' revision ids are read from their source
(``script_heads``) and compared with ``alembic_version``. A new, empty database is
created from the tables' metadata and stamped at head (Alembic's recipe for a fresh
install; tests/store/test_migrations.py checks it builds what the scripts build).
Alembic itself (~11 MB of a server's idle memory for good, and slow to import) is loaded
only to upgrade a database from an older revision.
"""

from __future__ import annotations

import ast
import asyncio
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.engine import database_unreachable, first_line
from server.store.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "SchemaTooNew",
    "alembic_config",
    "current_revision",
    "head_revision",
    "migrate",
    "migrate_when_reachable",
    "script_heads",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_VERSION_TABLE = "alembic_version"
_MIGRATION_LOCK = 0x61386E6D  # PostgreSQL advisory-lock key of schema changes ("a8nm")


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer version of the server: refuse to touch it."""


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


@cache
def script_heads() -> frozenset[str]:
    """The revisions no migration script builds on, read from the scripts' source (the
    plain ``revision = ...`` / ``down_revision = ...`` lines that script.py.mako writes)
    without importing Alembic. tests/store/test_migrations.py checks it against Alembic."""
    parents: dict[str, tuple[str, ...]] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        fields: dict[str, object] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        if target.id in ("revision", "down_revision"):
                            fields[target.id] = ast.literal_eval(node.value)
        revision, down = fields.get("revision"), fields.get("down_revision")
        if isinstance(revision, str):
            downs = down if isinstance(down, tuple | list) else (down,)
            parents[revision] = tuple(d for d in downs if isinstance(d, str))
    built_on = {p for ps in parents.values() for p in ps}
    return frozenset(set(parents) - built_on)


def _stored(connection: Connection) -> set[str]:
    """The revisions recorded in ``alembic_version`` (empty for a new database)."""
    if not inspect(connection).has_table(_VERSION_TABLE):
        return set()
    rows = connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}"))
    return {row[0] for row in rows}


def _create_at_head(connection: Connection, head: str) -> None:
    """A new database: the tables as the metadata defines them, stamped at ``head``.
    What a script does beyond the metadata (0002's UNLOGGED) is repeated here;
    tests/store/test_migrations.py builds the schema both ways and compares them."""
    metadata.create_all(connection)
    if connection.dialect.name == "postgresql":
        connection.execute(text("ALTER TABLE rate_buckets SET UNLOGGED"))  # as 0002 does
    # The version table exactly as Alembic creates it.
    connection.execute(
        text(
            f"CREATE TABLE {_VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
            f"CONSTRAINT {_VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
        )
    )
    connection.execute(text(f"INSERT INTO {_VERSION_TABLE} VALUES (:head)"), {"head": head})


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Replicas start together: one changes the schema while the others wait here
        # (until its commit), then find it at head. SQLite: BEGIN IMMEDIATE serializes.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    heads = script_heads()
    if _stored(connection) == heads:
        return  # at head already: nothing for Alembic to do
    if len(heads) == 1 and not inspect(connection).get_table_names():
        _create_at_head(connection, *heads)
        return
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config()
    current = _current(connection)
    known = {rev.revision for rev in ScriptDirectory.from_config(config).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaTooNew(
            f"database schema revision {current!r} is newer than this server knows "
            f"(head {head_revision()!r}); upgrade the server instead"
        )
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade the schema to head (idempotent); SchemaTooNew for an unknown revision."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def migrate_when_reachable(
    engine: AsyncEngine, *, wait_s: float, stop: asyncio.Event | None = None
) -> bool:
    """``migrate`` at start-up. A PostgreSQL that does not answer yet (it often starts
    after the server) is retried for ``wait_s`` seconds with backoff, each failure
    logged; then its error is raised. SQLite fails at once. False when ``stop`` was set
    while waiting (nothing migrated)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    pause = 0.5
    while True:
        try:
            await migrate(engine)
            return True
        except Exception as exc:
            left = deadline - loop.time()
            if engine.dialect.name != "postgresql" or not database_unreachable(exc) or left <= 0:
                raise
            logger.warning(
                "database unreachable at start: {}; retrying for {:.0f} s more",
                first_line(exc),
                left,
            )
        if await _stopped_within(stop, min(pause, left)):
            return False
        pause = min(pause * 2, 5.0)


async def _stopped_within(stop: asyncio.Event | None, seconds: float) -> bool:
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return False
    return True
