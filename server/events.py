"""In-process wake-ups for WatchJob streams and the worker's claim loop, the reads that
the watchers of one job share, and the cache of finished jobs.

The event table is the truth; these signals only shorten the wait. A watcher that
misses a signal still sees every event at its next poll.

Sharing (so 1,000 watchers of one job cost one database read per event, not 1,000):
every watched job has a ``Topic`` with a window of the job's recent events. ``notify``
starts a read that begins after the commit (or, when one is in flight, another right
after it), and wakes the watchers when it has found new events: each takes them from the
window. The safety-net poll is the topic's too: one read per poll interval for all of
its watchers, and only when no read started in that interval.

Finished jobs (SUCCEEDED, FAILED, CANCELLED) never change again; ``JobCache`` keeps them
for GetJob for ``ttl_s`` at most. ``notify`` (every commit that appends an event, here or
on another replica through LISTEN/NOTIFY; a delete notifies too) drops the entry at once;
the time limit bounds everything else (a purge by retention, a lost notification).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from server.domain.events import JobEventRecord
from server.domain.job import Job
from server.domain.states import TERMINAL_STATES

__all__ = ["EventHub", "JobCache", "Subscription", "Topic"]

RECENT_EVENTS = 512  # events a topic keeps for its watchers
PAGE = 500  # events per database read (Store.events_after's limit)

Fetch = Callable[[int], Awaitable[list[JobEventRecord]]]  # after_seq -> events, ascending


class JobCache:
    """Finished jobs by id, at most ``size`` of them, each for at most ``ttl_s``."""

    def __init__(self, *, ttl_s: float = 2.0, size: int = 1024) -> None:
        self._ttl_s = ttl_s
        self._size = size
        self._jobs: OrderedDict[str, tuple[Job, float]] = OrderedDict()
        self.epoch = 0  # grows with every invalidation (see put)

    def get(self, job_id: str) -> Job | None:
        entry = self._jobs.get(job_id)
        if entry is None:
            return None
        if time.monotonic() >= entry[1]:
            del self._jobs[job_id]
            return None
        return entry[0]

    def put(self, job: Job, epoch: int) -> None:
        """Keep ``job`` if it is finished and nothing was invalidated since ``epoch``
        (the value of ``self.epoch`` before the read: a read that raced a delete or a
        change must not put back what the invalidation removed)."""
        if self._ttl_s <= 0 or job.state not in TERMINAL_STATES or epoch != self.epoch:
            return
        self._jobs[job.id] = (job, time.monotonic() + self._ttl_s)
        self._jobs.move_to_end(job.id)
        while len(self._jobs) > self._size:
            self._jobs.popitem(last=False)

    def invalidate(self, job_id: str) -> None:
        self.epoch += 1
        self._jobs.pop(job_id, None)


@dataclass
class _Read:
    started: float  # loop time when it started
    done: asyncio.Future[None]
    task: asyncio.Task[None] | None = None  # a strong reference while it runs


class Topic:
    """One watched job: its watchers' wake-ups and the reads they share.

    ``notify`` starts a read (or marks one due after the read in flight) and the
    watchers are woken when it has finished: each then takes its events from the shared
    window without a read of its own.
    """

    def __init__(self, fetch: Fetch, cursor: int, *, poll_s: float = 1.0) -> None:
        self.wakes: set[asyncio.Event] = set()
        self._fetch = fetch
        self._poll_s = poll_s
        self._poller: asyncio.Task[None] | None = None
        self._recent: list[JobEventRecord] = []  # seq base+1, base+2, ... (no gaps)
        self._base = cursor  # events after this seq are in _recent (or not read yet)
        self._last: _Read | None = None  # the newest finished read
        self._reading: _Read | None = None
        self._again = False  # notified while a read was in flight: read once more
        self._jobs: dict[object, asyncio.Future[Job]] = {}  # shared job reads in flight

    def open(self) -> None:
        """Start the safety-net poll: a read every ``poll_s`` unless one started since
        (it finds what no notify announced: a lost NOTIFY, another process's commit)."""
        if self._poll_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._poll_s)
            last = self._last
            if self._reading is None and (
                last is None or loop.time() - last.started >= self._poll_s
            ):
                self._start()

    def notify(self) -> None:
        if self._reading is None:
            self._start()
        else:
            self._again = True  # the read in flight may have started before the commit

    def wake(self) -> None:
        for event in self.wakes:
            event.set()

    async def events_after(self, cursor: int, *, not_before: float | None) -> list[JobEventRecord]:
        """Events with seq > ``cursor`` (at most PAGE) from the shared window; with
        ``not_before``, as of a read that started at or after that loop time (the first
        look of a new watcher); without, as of the newest finished read."""
        last = self._last
        if last is None or (not_before is not None and last.started < not_before):
            await self._fresh(not_before or 0.0)
        if cursor < self._base:
            return await self._fetch(cursor)  # behind the shared window: a read of its own
        return self._recent[cursor - self._base : cursor - self._base + PAGE]

    async def _fresh(self, not_before: float) -> None:
        while True:
            read = self._reading or self._start()
            # shield: a watcher that goes away must not cancel the read the others await.
            await asyncio.shield(read.done)
            if read.started >= not_before:
                return

    def _start(self) -> _Read:
        loop = asyncio.get_running_loop()
        read = _Read(loop.time(), loop.create_future())
        self._reading = read
        read.task = loop.create_task(self._read(read))
        return read

    async def _read(self, read: _Read) -> None:
        seen = self._base + len(self._recent)
        try:
            while True:
                tail = self._base + len(self._recent)
                page = await self._fetch(tail)
                self._recent.extend(e for e in page if e.seq > tail)
                if len(page) < PAGE:
                    break
            if len(self._recent) > RECENT_EVENTS:
                drop = len(self._recent) - RECENT_EVENTS
                del self._recent[:drop]
                self._base += drop
            self._last = read
            read.done.set_result(None)
        except asyncio.CancelledError:
            read.done.cancel()
            raise
        except Exception as exc:
            read.done.set_exception(exc)
            read.done.exception()  # retrieved: the waiters re-raise it, or nobody waits
        finally:
            self._reading = None
        if self._base + len(self._recent) > seen:
            self.wake()  # new events for the watchers (a read that found none wakes nobody)
        if self._again:
            self._again = False
            self._start()

    async def job(self, key: object, read: Callable[[], Awaitable[Job]]) -> Job:
        """``read()``, shared with the callers that ask with the same ``key`` while it
        is in flight (heartbeats of many watchers come due together)."""
        pending = self._jobs.get(key)
        if pending is None:
            pending = asyncio.ensure_future(read())
            self._jobs[key] = pending
            pending.add_done_callback(lambda _: self._jobs.pop(key, None))
        return await asyncio.shield(pending)


@dataclass(frozen=True)
class Subscription:
    wake: asyncio.Event  # set when new events are in the topic's window (or on drain)
    topic: Topic


class EventHub:
    def __init__(self, *, job_cache_ttl_s: float = 2.0) -> None:
        self._topics: dict[str, Topic] = {}
        self.work_available = asyncio.Event()
        self.jobs = JobCache(ttl_s=job_cache_ttl_s)

    def notify(self, job_id: str) -> None:
        """The job changed (call after the commit): forget its cache; its watchers get
        a shared read of the new events and are woken when it is done."""
        self.jobs.invalidate(job_id)
        topic = self._topics.get(job_id)
        if topic is not None:
            topic.notify()

    def wake_all(self) -> None:
        """Wake every watcher (they then see that the server drains)."""
        for topic in self._topics.values():
            topic.wake()

    def wake_worker(self) -> None:
        self.work_available.set()

    @contextmanager
    def subscribe(
        self, job_id: str, fetch: Fetch, cursor: int, *, poll_s: float = 1.0
    ) -> Iterator[Subscription]:
        """Wake-ups for ``job_id`` and its shared reads (``fetch``: events after a seq;
        ``cursor``: where a new topic's window starts; ``poll_s``: its safety-net poll);
        removed on exit."""
        event = asyncio.Event()
        topic = self._topics.get(job_id)
        if topic is None:
            topic = self._topics[job_id] = Topic(fetch, cursor, poll_s=poll_s)
            topic.open()
        topic.wakes.add(event)
        try:
            yield Subscription(event, topic)
        finally:
            topic.wakes.discard(event)
            if not topic.wakes and self._topics.get(job_id) is topic:
                del self._topics[job_id]
                topic.close()

    @property
    def watcher_count(self) -> int:
        return sum(len(t.wakes) for t in self._topics.values())
