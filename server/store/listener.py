"""PostgreSQL LISTEN: events committed by other replicas wake this replica's watchers.

The event table stays the truth; a lost notification only costs a watcher its poll
interval. The connection is re-established with backoff when it drops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from loguru import logger
from sqlalchemy.engine import make_url

from server.store.repository import NOTIFY_CHANNEL

__all__ = ["PgListener", "libpq_conninfo"]


def libpq_conninfo(url: str) -> str:
    """``postgresql+psycopg://u:p@h/db`` -> ``postgresql://u:p@h/db`` for psycopg."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgListener:
    def __init__(self, url: str, on_notify: Callable[[str], None]) -> None:
        self._conninfo = libpq_conninfo(url)
        self._on_notify = on_notify
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """LISTEN until cancelled, reconnecting after errors."""
        import psycopg  # the engine has loaded it already; a SQLite server never does

        delay = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.connected.set()
                    delay = 0.5
                    async for notice in conn.notifies():
                        self._on_notify(notice.payload)
            except psycopg.Error as exc:
                self.connected.clear()
                logger.warning("LISTEN connection lost ({}); retrying in {:.1f} s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
