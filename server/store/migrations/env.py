"""Alembic environment: migrations run on a connection the server hands in.

``server.store.migrate`` calls ``command.upgrade`` with ``config.attributes["connection"]``
set to a sync connection from the async engine (``AsyncConnection.run_sync``).
"""

from __future__ import annotations

from alembic import context

from server.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through server.store.migrate (it passes a connection)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
