"""In-process wake-ups for WatchJob streams and the worker's claim loop.

The event table is the truth; these signals only shorten the wait. A watcher that
misses a signal still sees every event at its next poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["EventHub"]


class EventHub:
    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self.work_available = asyncio.Event()

    def notify(self, job_id: str) -> None:
        """Wake every watcher of ``job_id`` (call after the commit)."""
        for event in self._watchers.get(job_id, ()):
            event.set()

    def wake_worker(self) -> None:
        self.work_available.set()

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        """An Event set whenever ``job_id`` gets new events; removed on exit."""
        event = asyncio.Event()
        self._watchers.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._watchers.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._watchers[job_id]

    @property
    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())
