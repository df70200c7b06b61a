"""Token-bucket math with an injected clock: admitted counts and retry times are exactly
what the math predicts, in process and in the shared SQL table (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from server.auth.buckets import BucketPolicy, Buckets, MemoryBuckets, SqlBuckets, take
from server.store.engine import create_engine
from server.store.migrate import migrate


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# 4 tokens of burst, one token every 2 s (binary-exact steps: no float doubt).
POLICY = BucketPolicy("requests", capacity=4, refill_per_s=0.5)


def test_burst_then_refill_admits_what_the_math_predicts() -> None:
    state = None
    admitted = 0
    for _ in range(10):  # a burst of 10 at t=0: the capacity gets through
        state, decision = take(POLICY, state, 0.0)
        admitted += decision.admitted
    assert admitted == 4
    assert decision.remaining == 0 and decision.retry_after_s == 2.0 and decision.reset_s == 8.0
    state, decision = take(POLICY, state, 1.5)  # 0.75 tokens: refused, 0.5 s to go
    assert not decision.admitted and decision.retry_after_s == pytest.approx(0.5)
    state, decision = take(POLICY, state, 2.0)  # exactly one token
    assert decision.admitted and decision.remaining == 0
    # Long idle: refills to the capacity, never beyond.
    state, decision = take(POLICY, state, 1000.0)
    assert decision.admitted and decision.remaining == POLICY.capacity - 1


@given(
    period=st.sampled_from([0.25, 0.5, 1.0, 1.5, 3.0, 7.0]),
    count=st.integers(min_value=1, max_value=400),
)
def test_steady_callers_get_capacity_plus_the_refill(period: float, count: int) -> None:
    """Calls every ``period`` s from t=0 to t=(count-1)*period: admitted = the burst, plus
    one per token that refilled (while the bucket is not full), in closed form."""
    state = None
    admitted = 0
    for i in range(count):
        state, decision = take(POLICY, state, i * period)
        admitted += decision.admitted
    horizon = (count - 1) * period
    if period * POLICY.refill_per_s >= 1:  # refills at least as fast as it is drained
        expected = count
    else:
        expected = min(count, POLICY.capacity + math.floor(horizon * POLICY.refill_per_s))
    assert admitted == expected


@given(start=st.floats(min_value=0, max_value=10_000, allow_nan=False), burst=st.integers(5, 50))
@settings(max_examples=200)
def test_retry_after_is_exactly_the_time_to_the_next_token(start: float, burst: int) -> None:
    state = None
    for _ in range(burst):
        state, decision = take(POLICY, state, start)
    assert not decision.admitted
    wait = decision.retry_after_s
    _, early = take(POLICY, state, start + wait - 1e-3)
    assert not early.admitted
    _, on_time = take(POLICY, state, start + wait)
    assert on_time.admitted


async def _count(buckets: Buckets, key: str, n: int) -> int:
    return sum([(await buckets.take(key, POLICY)).admitted for _ in range(n)])


async def _drive(buckets: Buckets, clock: Clock) -> None:
    """The same schedule for every store: bursts, partial refills, a give-back."""
    assert await _count(buckets, "a", 6) == 4
    assert await _count(buckets, "b", 2) == 2  # keys are independent
    refused = await buckets.take("a", POLICY)
    assert not refused.admitted and refused.retry_after_s == pytest.approx(2.0)
    assert (refused.limit, refused.remaining, refused.reset_s) == (4, 0, pytest.approx(8.0))
    clock.now += 1.0  # half a token
    half = await buckets.take("a", POLICY)
    assert not half.admitted and half.retry_after_s == pytest.approx(1.0)
    clock.now += 5.0  # 3 tokens
    assert await _count(buckets, "a", 5) == 3
    await buckets.give_back("a", POLICY)
    assert await _count(buckets, "a", 3) == 1
    clock.now += 3600.0  # full again, never more than the capacity
    assert await _count(buckets, "a", 10) == 4
    clock.now -= 50.0  # a clock going backwards adds nothing
    assert await _count(buckets, "a", 2) == 0


async def test_memory_buckets_follow_the_math() -> None:
    clock = Clock()
    await _drive(MemoryBuckets(clock), clock)


async def test_memory_buckets_forget_full_buckets_when_too_many() -> None:
    clock = Clock()
    buckets = MemoryBuckets(clock, max_keys=10)
    for i in range(10):
        await buckets.take(f"k{i}", POLICY)
    clock.now += POLICY.fill_s
    await buckets.take("new", POLICY)
    assert list(buckets._state) == ["new"]


async def test_sql_buckets_follow_the_math(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        clock = Clock()
        buckets = SqlBuckets(engine, clock=clock)
        await _drive(buckets, clock)
        await buckets.close()
    finally:
        await engine.dispose()


async def test_sql_buckets_are_atomic_and_shared(database_url: str) -> None:
    """Two stores (two replicas) hammering one bucket concurrently: exactly the
    capacity is admitted, with the database's own clock."""
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        await migrate(engines[0])
        policy = BucketPolicy("create", capacity=10, refill_per_s=1 / 3600)
        replicas = [SqlBuckets(engine) for engine in engines]
        decisions = await asyncio.gather(
            *(replicas[i % 2].take("create:token:abc", policy) for i in range(40))
        )
        assert sum(d.admitted for d in decisions) == 10
        assert all(d.retry_after_s > 3000 for d in decisions if not d.admitted)
        if engines[0].dialect.name == "postgresql":  # disposable state: no WAL
            async with engines[0].connect() as conn:
                persistence = await conn.scalar(
                    text("SELECT relpersistence FROM pg_class WHERE relname = 'rate_buckets'")
                )
            assert persistence == "u"
        for replica in replicas:
            await replica.close()
    finally:
        for engine in engines:
            await engine.dispose()


async def test_try_take_admits_as_take_does_and_refusals_take_nothing() -> None:
    """The per-call yes/no check follows the same math as ``take`` (same schedule, same
    admitted counts), and a refusal leaves the bucket as it was."""
    clock = Clock()
    quick, full = MemoryBuckets(clock), MemoryBuckets(clock)
    schedule = [0.0] * 6 + [1.0, 1.0, 4.0, 4.0, 4.0, 4.0, 3600.0] + [0.0] * 5
    for step in schedule:
        clock.now += step
        assert quick.try_take("k", POLICY) == (await full.take("k", POLICY)).admitted
    assert quick.try_take("k", POLICY) is False
    refused = await quick.take("k", POLICY)  # the refusal's details, after try_take said no
    assert not refused.admitted and refused.retry_after_s == pytest.approx(2.0)
