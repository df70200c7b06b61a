"""BatchedBuckets with an injected clock: replicas reserving batches from one shared bucket
never admit more than the bucket's math allows, waste at most a batch per replica, and
reach the shared bucket once per batch."""

from __future__ import annotations

import asyncio

import pytest

from server.api.ratelimit import RateLimits
from server.auth.batched import BatchedBuckets
from server.auth.buckets import BucketPolicy, MemoryBuckets, SqlBuckets
from server.settings import Settings
from server.store.engine import create_engine
from server.store.migrate import migrate

# 40 tokens of burst, 8 per second, reserved 5 at a time.
POLICY = BucketPolicy("requests", capacity=40, refill_per_s=8.0, batch=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def replicas(count: int, clock: Clock) -> tuple[MemoryBuckets, list[BatchedBuckets]]:
    shared = MemoryBuckets(clock)
    return shared, [BatchedBuckets(shared, hold_s=1.0, clock=clock) for _ in range(count)]


async def test_one_replica_admits_exactly_the_burst_with_a_check_per_batch() -> None:
    clock = Clock()
    _, (replica,) = replicas(1, clock)
    decisions = [await replica.take("k", POLICY) for _ in range(60)]
    assert sum(d.admitted for d in decisions) == 40  # batches of 5 divide the burst
    assert [d.remaining for d in decisions[:6]] == [39, 38, 37, 36, 35, 34]
    # 8 batches, then for each of the 20 refusals: the batch, then a single token.
    assert replica.shared_checks == 8 + 20 * 2
    refused = decisions[-1]
    assert not refused.admitted and refused.retry_after_s == pytest.approx(1 / 8)


@pytest.mark.parametrize("count", [1, 2, 3])
async def test_replicas_never_admit_more_than_one_bucket(count: int) -> None:
    """Round-robin callers over ``count`` replicas, 20 calls per simulated second for
    30 s: the admitted total is at most the single bucket's (burst + refill) and at least
    that minus a batch per replica and hold period."""
    clock = Clock()
    _, group = replicas(count, clock)
    admitted = 0
    calls = 0
    for step in range(600):
        clock.now = 1_000.0 + step * 0.05
        for _ in range(2):  # 40 calls/s offered, the bucket allows 8/s
            decision = await group[calls % count].take("k", POLICY)
            admitted += decision.admitted
            calls += 1
    ceiling = POLICY.capacity + POLICY.refill_per_s * (600 - 1) * 0.05
    assert admitted <= ceiling
    holds = 30 / 1.0  # hold periods in the run
    assert admitted >= ceiling - count * (POLICY.batch - 1) * holds


async def test_reservations_expire_after_the_hold() -> None:
    clock = Clock()
    _, (replica,) = replicas(1, clock)
    assert (await replica.take("k", POLICY)).admitted  # reserves 5, spends 1
    clock.now += 1.5  # the 4 left expire; the bucket refills 12 (to 40 at most)
    await replica.take("k", POLICY)
    assert replica.shared_checks == 2


async def test_unbatched_policies_go_to_the_shared_bucket_every_time() -> None:
    clock = Clock()
    _, (replica,) = replicas(1, clock)
    create = BucketPolicy("create", capacity=3, refill_per_s=1 / 3600)
    assert [(await replica.take("c", create)).admitted for _ in range(5)] == [1, 1, 1, 0, 0]
    assert replica.shared_checks == 5
    await replica.give_back("c", create)
    assert (await replica.take("c", create)).admitted


async def test_concurrent_callers_share_one_reservation() -> None:
    clock = Clock()
    _, (replica,) = replicas(1, clock)
    decisions = await asyncio.gather(*(replica.take("k", POLICY) for _ in range(25)))
    assert all(d.admitted for d in decisions)
    assert replica.shared_checks == 5


async def test_batched_sql_buckets_are_shared_by_replicas(database_url: str) -> None:
    """The real shared table: three replicas hammering one client's bucket concurrently
    admit exactly the burst."""
    engines = [create_engine(database_url) for _ in range(3)]
    try:
        await migrate(engines[0])
        policy = BucketPolicy("requests", capacity=40, refill_per_s=1 / 3600, batch=5)
        sql = [SqlBuckets(engine) for engine in engines]
        group = [BatchedBuckets(s, hold_s=60.0) for s in sql]
        # 40 calls per replica: none can hold more tokens than it has calls to spend.
        decisions = await asyncio.gather(
            *(group[i % 3].take("requests:token:x", policy) for i in range(120))
        )
        assert sum(d.admitted for d in decisions) == 40
        # 8 batches, a batch + a single per refusal, a few singles near the end.
        assert sum(b.shared_checks for b in group) <= 8 + 2 * 80 + 2 * 4
        for s in sql:
            await s.close()
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.parametrize(
    "configured, rate, burst, expected",
    [(10, 20.0, 100, 10), (1, 20.0, 100, 2), (10, 1e9, 1_000_000, 1_000_000), (10, 5.0, 4, 4)],
)
def test_requests_batch_follows_the_settings(
    configured: int, rate: float, burst: int, expected: int
) -> None:
    settings = Settings(
        rate_limit_shared_batch=configured,
        rate_limit_requests_per_s=rate,
        rate_limit_requests_burst=burst,
    )
    limits = RateLimits.from_settings(settings)
    assert limits.requests is not None and limits.requests.batch == expected
    assert limits.create is not None and limits.create.batch == 1


async def test_try_take_spends_only_a_live_local_reservation() -> None:
    """The per-call check never waits: True while this replica's reservation holds
    tokens, None (ask ``take``) without one, when it expired, and for unbatched
    policies; what it spends counts like a ``take``."""
    clock = Clock()
    shared, (replica,) = replicas(1, clock)
    assert replica.try_take("k", POLICY) is None  # nothing reserved yet
    assert (await replica.take("k", POLICY)).admitted  # reserves 5, spends 1
    assert [replica.try_take("k", POLICY) for _ in range(5)] == [True] * 4 + [None]
    assert replica.shared_checks == 1
    assert (await replica.take("k", POLICY)).remaining == 34  # 40 - 5 - 1 (a new batch)
    clock.now += 1.5  # the reservation expired
    assert replica.try_take("k", POLICY) is None
    single = BucketPolicy("create", capacity=3, refill_per_s=1.0)
    assert replica.try_take("c", single) is None and await shared.take("c", single)
