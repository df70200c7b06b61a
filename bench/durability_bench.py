"""Claim throughput and cross-replica event latency on PostgreSQL (issue 5).

Starts a throwaway PostgreSQL cluster (loopback only), then:
- claims: N QUEUED jobs claimed by R "replicas" (separate engines) concurrently with
  FOR UPDATE SKIP LOCKED; claims per second, and a check that no job is claimed twice;
- latency: replica A appends events; replica B learns of each through LISTEN/NOTIFY and
  reads it from the event table (what a WatchJob stream does); p50/p99 of commit on A ->
  row read on B.

Run: .venv/bin/python -m bench.durability_bench [--jobs 300] [--replicas 3] [--events 300]
(results: the ``durability`` part of bench/results/performance.json and BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path

from bench.perf_common import loadavg, save_part
from server.domain.events import EventKind
from server.domain.job import Job, utcnow
from server.domain.spec import PluginSpec
from server.domain.states import JobState
from server.store.engine import create_engine
from server.store.listener import PgListener
from server.store.migrate import migrate
from server.store.repository import Store
from tests.pg import PostgresCluster, find_pg_bin

ROOT = Path(__file__).resolve().parent.parent
P99_LIMIT_MS = 500.0  # issue 5: event on one replica -> seen on another
SPEC = PluginSpec.from_json(json.loads((ROOT / "examples" / "time.json").read_text()))


def new_job() -> Job:
    now = utcnow()
    return Job(
        id=uuid.uuid4().hex, spec=SPEC, state=JobState.QUEUED, create_time=now, update_time=now
    )


async def bench_claims(url: str, jobs: int, replicas: int) -> dict[str, float]:
    engines = [create_engine(url) for _ in range(replicas)]
    stores = [Store(e) for e in engines]
    for _ in range(jobs):
        await stores[0].create_job(new_job())
    claimed: list[str] = []

    async def worker(store: Store, owner: str) -> None:
        while (claim := await store.claim(owner=owner, lease_s=60, max_attempts=3)) is not None:
            claimed.append(claim.job.id)

    started = time.perf_counter()
    await asyncio.gather(*(worker(s, f"r{i}") for i, s in enumerate(stores)))
    elapsed = time.perf_counter() - started
    for engine in engines:
        await engine.dispose()
    assert len(claimed) == jobs and len(set(claimed)) == jobs, "a job was claimed twice"
    return {
        "jobs": jobs,
        "replicas": replicas,
        "seconds": elapsed,
        "claims_per_second": jobs / elapsed,
    }


async def bench_latency(url: str, events: int) -> dict[str, float]:
    engine_a, engine_b = create_engine(url), create_engine(url)
    writer, reader = Store(engine_a), Store(engine_b)
    job, _ = await writer.create_job(new_job())
    claim = await writer.claim(owner="a", lease_s=600, max_attempts=3)
    assert claim is not None
    woke = asyncio.Event()
    listener = PgListener(url, lambda _job_id: woke.set())
    listening = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.connected.wait(), 10)
    cursor = (await reader.get_job(job.id)).last_event_seq
    latencies: list[float] = []
    for i in range(events):
        woke.clear()
        sent = time.perf_counter()
        await writer.update(job.id, claim.token, {}, EventKind.LOG, {"message": f"event {i}"})
        await asyncio.wait_for(woke.wait(), 10)
        rows = await reader.events_after(job.id, cursor)
        latencies.append((time.perf_counter() - sent) * 1000)
        assert rows and rows[-1].seq == cursor + 1
        cursor = rows[-1].seq
    listening.cancel()
    await engine_a.dispose()
    await engine_b.dispose()
    latencies.sort()
    return {
        "events": events,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
    }


async def migrated(cluster: PostgresCluster) -> str:
    url = cluster.create_database()
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    return url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    load_at_start = loadavg()
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries (initdb) are required")
    cluster = PostgresCluster(bin_dir).start()
    try:
        claims = await bench_claims(await migrated(cluster), args.jobs, args.replicas)
        latency = await bench_latency(await migrated(cluster), args.events)
    finally:
        cluster.stop()
    latency["limit_p99_ms"] = P99_LIMIT_MS
    save_part(
        "durability",
        {"claims": claims, "event_latency": latency},
        module="bench.durability_bench",
        loadavg_at_start=load_at_start,
    )
    print(
        f"claims/s ({claims['replicas']} replicas, {claims['jobs']} jobs, SKIP LOCKED): "
        f"{claims['claims_per_second']:.0f}; event latency A->B p50 / p99 / max "
        f"({latency['events']} events): {latency['p50_ms']:.1f} / {latency['p99_ms']:.1f} / "
        f"{latency['max_ms']:.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
