"""Alembic migrations create exactly the tables the code uses, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from server.store.engine import create_engine
from server.store.migrate import (
    SchemaTooNew,
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
