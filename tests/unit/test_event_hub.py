"""EventHub: watchers of one job share its reads; finished jobs are cached until a change."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from server.domain.events import EventKind, JobEventRecord
from server.domain.job import Job, utcnow
from server.domain.spec import PluginSpec
from server.domain.states import JobState
from server.events import EventHub, JobCache

SPEC = PluginSpec.from_json(
    json.loads((Path(__file__).resolve().parents[2] / "examples" / "time.json").read_text())
)


def _job(state: JobState = JobState.RUNNING, job_id: str = "j1") -> Job:
    now = utcnow()
    return Job(id=job_id, spec=SPEC, state=state, create_time=now, update_time=now)


class EventLog:
    """A job's event table: ``fetch`` counts the reads."""

    def __init__(self) -> None:
        self.events: list[JobEventRecord] = []
        self.reads = 0

    def append(self) -> None:
        seq = len(self.events) + 1
        self.events.append(
            JobEventRecord("j1", seq, utcnow(), EventKind.LOG, {"message": str(seq)}, _job())
        )

    async def fetch(self, after: int) -> list[JobEventRecord]:
        self.reads += 1
        found = [e for e in self.events if e.seq > after][:500]  # as of the read's start
        await asyncio.sleep(0.01)  # a database round trip
        return found


async def test_watchers_share_one_read_per_notify() -> None:
    hub, log = EventHub(), EventLog()
    got: dict[int, list[int]] = {}
    ready = asyncio.Barrier(51)

    async def watch(i: int) -> None:
        got[i] = []
        with hub.subscribe("j1", log.fetch, 0) as sub:
            not_before: float | None = asyncio.get_running_loop().time()
            await ready.wait()
            while len(got[i]) < 3:
                sub.wake.clear()
                events = await sub.topic.events_after(
                    got[i][-1] if got[i] else 0, not_before=not_before
                )
                got[i] += [e.seq for e in events]
                not_before = None
                if len(got[i]) < 3:
                    await sub.wake.wait()

    watchers = [asyncio.create_task(watch(i)) for i in range(50)]
    await ready.wait()
    await asyncio.sleep(0.05)  # every watcher had its first look
    first = log.reads
    for _ in range(3):
        log.append()
        hub.notify("j1")
        await asyncio.sleep(0.03)
    await asyncio.wait_for(asyncio.gather(*watchers), 5)
    assert all(seqs == [1, 2, 3] for seqs in got.values())
    assert log.reads - first <= 3  # one read per notify, not one per watcher
    assert hub.watcher_count == 0


async def test_a_notify_during_a_read_reads_again() -> None:
    hub, log = EventHub(), EventLog()
    with hub.subscribe("j1", log.fetch, 0) as sub:
        assert await sub.topic.events_after(0, not_before=0.0) == []
        log.append()
        hub.notify("j1")  # a read starts
        await asyncio.sleep(0)  # and takes its snapshot
        log.append()
        hub.notify("j1")  # it may have missed this one: another read follows
        for _ in range(2):
            sub.wake.clear()
            await asyncio.wait_for(sub.wake.wait(), 1)
        events = await sub.topic.events_after(0, not_before=None)
        assert [e.seq for e in events] == [1, 2]


async def test_a_new_watcher_looks_with_a_read_of_its_own_time() -> None:
    hub, log = EventHub(), EventLog()
    with hub.subscribe("j1", log.fetch, 0) as sub:
        await sub.topic.events_after(0, not_before=0.0)
        log.append()  # committed elsewhere, not notified (yet)
        assert await sub.topic.events_after(0, not_before=None) == []
        now = asyncio.get_running_loop().time()
        events = await sub.topic.events_after(0, not_before=now)
        assert [e.seq for e in events] == [1]


async def test_the_topic_polls_for_what_no_notify_announced() -> None:
    hub, log = EventHub(), EventLog()
    with hub.subscribe("j1", log.fetch, 0, poll_s=0.05) as sub:
        await sub.topic.events_after(0, not_before=0.0)
        reads = log.reads
        sub.wake.clear()
        log.append()  # committed by another process: no notify
        await asyncio.wait_for(sub.wake.wait(), 1)  # the poll found it
        assert [e.seq for e in await sub.topic.events_after(0, not_before=None)] == [1]
        await asyncio.sleep(0.2)
        assert log.reads - reads <= 6  # one read per interval, not one per watcher


async def test_a_watcher_behind_the_window_reads_its_own() -> None:
    hub, log = EventHub(), EventLog()
    for _ in range(3):
        log.append()
    with hub.subscribe("j1", log.fetch, 2) as sub:  # the window starts after seq 2
        events = await sub.topic.events_after(0, not_before=0.0)
        assert [e.seq for e in events] == [1, 2, 3]


def test_job_cache_keeps_finished_jobs_until_a_change() -> None:
    cache = JobCache(ttl_s=60)
    running, done = _job(JobState.RUNNING, "a"), _job(JobState.SUCCEEDED, "b")
    cache.put(running, cache.epoch)
    cache.put(done, cache.epoch)
    assert cache.get("a") is None  # only finished jobs: they never change
    assert cache.get("b") is done
    cache.invalidate("b")  # a delete (or any event) of the job
    assert cache.get("b") is None


def test_job_cache_drops_a_read_that_raced_an_invalidation() -> None:
    cache = JobCache(ttl_s=60)
    epoch = cache.epoch  # a read starts
    cache.invalidate("b")  # the job is deleted meanwhile
    cache.put(_job(JobState.CANCELLED, "b"), epoch)  # the read ends with the old row
    assert cache.get("b") is None


def test_job_cache_forgets_after_its_ttl() -> None:
    cache = JobCache(ttl_s=0.0)
    cache.put(_job(JobState.FAILED, "c"), cache.epoch)
    assert cache.get("c") is None
    cache = JobCache(ttl_s=60, size=2)
    jobs = [replace(_job(JobState.FAILED), id=f"j{i}") for i in range(3)]
    for job in jobs:
        cache.put(job, cache.epoch)
    assert cache.get("j0") is None and cache.get("j2") is jobs[2]
