"""Schema migrations (Alembic) for SQLite and PostgreSQL, run by the server on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["SchemaTooNew", "alembic_config", "current_revision", "head_revision", "migrate"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer version of the server: refuse to touch it."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _upgrade(connection: Connection) -> None:
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
