"""Alembic migrations create exactly the tables the code uses, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from server.store.engine import create_engine
from server.store.migrate import (
    SchemaTooNew,
    alembic_config,
    current_revision,
    head_revision,
    migrate,
    script_heads,
)
from server.store.tables import metadata


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_tables(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_refuses_a_schema_from_a_newer_server(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        with pytest.raises(SchemaTooNew, match="9999_future"):
            await migrate(engine)
    finally:
        await engine.dispose()


def test_script_heads_read_from_source_match_alembic() -> None:
    # migrate() skips Alembic when alembic_version holds script_heads(): they must agree.
    assert script_heads() == {head_revision()}


async def test_a_database_behind_head_is_upgraded(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE api_tokens"))
            await conn.execute(text("DROP TABLE rate_buckets"))
            await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        await migrate(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


def _schema(connection: Connection) -> dict[str, Any]:
    """Everything the database says about its tables, in a comparable form."""
    found = inspect(connection)
    schema: dict[str, Any] = {}
    for table in sorted(found.get_table_names()):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in found.get_columns(table)
            ],
            "primary key": found.get_pk_constraint(table),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), i["unique"]) for i in found.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(table)
            ),
            "checks": sorted(str(c) for c in found.get_check_constraints(table)),
            "foreign keys": sorted(str(fk) for fk in found.get_foreign_keys(table)),
        }
    if connection.dialect.name == "postgresql":
        persistence = (
            "SELECT relname, relpersistence FROM pg_class"
            " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace"
        )
        schema["persistence"] = {r[0]: r[1] for r in connection.execute(text(persistence))}
    return schema


def _upgrade_with_alembic(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _drop_everything(connection: Connection) -> None:
    for table in inspect(connection).get_table_names():
        connection.execute(text(f'DROP TABLE "{table}"'))


async def test_a_new_database_is_built_as_the_migration_scripts_build_it(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)  # empty database: from the metadata, stamped at head
        assert await current_revision(engine) == head_revision()
        async with engine.begin() as conn:
            created = await conn.run_sync(_schema)
            await conn.run_sync(_drop_everything)
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_with_alembic)  # every script, in order
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema) == created
            assert await conn.run_sync(_diff) == []
        assert set(created) >= {*metadata.tables, "alembic_version"}
    finally:
        await engine.dispose()


def test_a_new_database_leaves_alembic_unloaded(tmp_path: Path) -> None:
    # The point of building a new database from the metadata: a server that created its
    # database does not carry Alembic in memory for its whole life.
    script = """
import asyncio, json, sys
from server.store.engine import create_engine
from server.store.migrate import migrate
async def main(url):
    engine = create_engine(url)
    await migrate(engine)
    await migrate(engine)
    await engine.dispose()
asyncio.run(main(sys.argv[1]))
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & {"alembic", "mako"})))
"""
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    out = subprocess.run(
        [sys.executable, "-c", script, url],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert json.loads(out.stdout) == []


async def test_replicas_starting_together_on_a_new_database(database_url: str) -> None:
    # Every replica migrates at start; three at once on an empty database, or on one
    # behind head, must all come up (one changes the schema, the others find it at head).
    # Without the migration lock PostgreSQL failed them (duplicate type) or hung; SQLite
    # failed a connection that could not switch the new file to WAL ("database is locked").
    engines = [create_engine(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(engine) for engine in engines))
        assert await current_revision(engines[0]) == head_revision()
        if database_url.startswith("sqlite"):  # a connection that lost the race to switch
            for engine in engines:  # the new file to WAL still ends up using it
                async with engine.connect() as conn:
                    assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        async with engines[0].begin() as conn:  # now behind head: Alembic's path
            await conn.execute(text("DROP TABLE api_tokens"))
            await conn.execute(text("DROP TABLE rate_buckets"))
            await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        await asyncio.gather(*(migrate(engine) for engine in engines))
        assert await current_revision(engines[0]) == head_revision()
        async with engines[0].connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await asyncio.gather(*(engine.dispose() for engine in engines))


async def test_processes_opening_a_new_sqlite_file_at_once(tmp_path: Path) -> None:
    # The race above, often enough to hit it: six engines on a new file, ten times
    # (without the fix 2 of 5 runs of this test failed with "database is locked").
    for round_ in range(10):
        url = f"sqlite+aiosqlite:///{tmp_path / f'new-{round_}.db'}"
        engines = [create_engine(url) for _ in range(6)]
        try:
            await asyncio.gather(*(migrate(engine) for engine in engines))
            for engine in engines:
                async with engine.connect() as conn:
                    assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        finally:
            await asyncio.gather(*(engine.dispose() for engine in engines))
