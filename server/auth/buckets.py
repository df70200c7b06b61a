"""Token buckets: the pure math, an in-process store and a store shared through SQL.

A bucket holds up to ``capacity`` tokens and gains ``refill_per_s`` tokens per second;
a call takes ``cost`` tokens or is refused. Refused, the caller may retry after
``(cost - tokens) / refill_per_s`` seconds: the time until the next whole token.

Where the buckets live:

- ``MemoryBuckets``: a dict in this process (SQLite deployments, which are one replica;
  it also keeps SQLite's single write lock out of every read).
- ``SqlBuckets``: the ``rate_buckets`` table, one atomic ``INSERT ... ON CONFLICT DO
  UPDATE ... RETURNING`` per check that computes the refill in SQL with the database's
  clock, so every replica draws from the same bucket (PostgreSQL in production; the same
  statement runs on SQLite for tests).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Float, case, cast, delete, func, literal, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.shielding import shielded
from server.store.tables import RateBucketRow, metadata

__all__ = [
    "BucketPolicy",
    "Buckets",
    "Decision",
    "MemoryBuckets",
    "SqlBuckets",
    "decide",
    "refill",
    "spend",
    "take",
]

_EPSILON = 1e-9  # float slack, so 0.1 + 0.2 tokens count as the 0.3 the math says
_TABLE = metadata.tables[RateBucketRow.__tablename__]


@dataclass(frozen=True, slots=True)
class BucketPolicy:
    name: str  # "create", "requests": part of the bucket key and of QuotaFailure
    capacity: int  # the burst
    refill_per_s: float
    # Tokens a replica reserves from a shared bucket at once (server.auth.batched); 1:
    # every check goes to the shared bucket. In-process buckets ignore it.
    batch: int = 1

    @property
    def fill_s(self) -> float:
        """Seconds an empty bucket takes to fill (after that, idle == absent)."""
        return self.capacity / self.refill_per_s


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    limit: int  # the bucket's capacity
    remaining: int  # whole tokens left after this call
    retry_after_s: float  # refused: seconds until the next token; admitted: 0
    reset_s: float  # seconds until the bucket is full again


def refill(policy: BucketPolicy, tokens: float, elapsed_s: float) -> float:
    """Tokens after ``elapsed_s`` seconds (time running backwards adds nothing)."""
    return min(float(policy.capacity), tokens + max(0.0, elapsed_s) * policy.refill_per_s)


def decide(policy: BucketPolicy, tokens: float, admitted: bool, cost: float = 1.0) -> Decision:
    """The decision for a bucket left with ``tokens`` by a check that ``admitted`` or not."""
    rate = policy.refill_per_s
    return Decision(
        admitted=admitted,
        limit=policy.capacity,
        remaining=max(0, math.floor(tokens + _EPSILON)),
        retry_after_s=0.0 if admitted else max(0.0, (cost - tokens) / rate),
        reset_s=max(0.0, (policy.capacity - tokens) / rate),
    )


def spend(
    policy: BucketPolicy, state: tuple[float, float] | None, now: float, cost: float = 1.0
) -> tuple[tuple[float, float], bool]:
    """One check of a bucket in ``state`` (tokens, updated) at ``now``; a missing bucket
    is full. Returns the new state and whether it admitted (took ``cost``). Pure."""
    tokens, updated = state if state is not None else (float(policy.capacity), now)
    tokens = refill(policy, tokens, now - updated)
    admitted = tokens >= cost - _EPSILON
    if admitted:
        tokens = max(0.0, tokens - cost)
    return (tokens, max(updated, now)), admitted


def take(
    policy: BucketPolicy, state: tuple[float, float] | None, now: float, cost: float = 1.0
) -> tuple[tuple[float, float], Decision]:
    """``spend``, with the decision's details. Pure."""
    state, admitted = spend(policy, state, now, cost)
    return state, decide(policy, state[0], admitted, cost)


class Buckets(Protocol):
    """Where buckets live. ``take``: one check (takes ``cost`` tokens when admitted).
    ``try_take``: the same check when it needs no waiting (in process), for every call:
    True (taken), False (refused: ``take`` tells by how much) or None (cannot tell
    without waiting; nothing taken: ``take``). ``give_back``: return tokens of a call
    that did not count (never above capacity)."""

    def take(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> Awaitable[Decision]: ...

    def try_take(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> bool | None: ...

    def give_back(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> Awaitable[None]: ...


class MemoryBuckets:
    """Buckets in this process. ``clock``: monotonic seconds (injectable for tests)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._state: dict[str, tuple[float, float]] = {}
        self._fill_s: dict[str, float] = {}  # bucket key -> fill time of its policy

    async def take(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> Decision:
        now = self._clock()
        state, decision = take(policy, self._state.get(key), now, cost)
        self._keep(key, policy, state, now)
        return decision

    def try_take(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> bool:
        now = self._clock()
        state, admitted = spend(policy, self._state.get(key), now, cost)
        self._keep(key, policy, state, now)
        return admitted

    def _keep(self, key: str, policy: BucketPolicy, state: tuple[float, float], now: float) -> None:
        self._state[key] = state
        self._fill_s[key] = policy.fill_s
        if len(self._state) > self._max_keys:
            self._prune(now)

    async def give_back(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> None:
        """Return tokens of a call that did not count (never above capacity)."""
        if key in self._state:
            tokens, updated = self._state[key]
            self._state[key] = (min(float(policy.capacity), tokens + cost), updated)

    def _prune(self, now: float) -> None:
        """Forget buckets idle long enough to be full again (the same as absent)."""
        for key, (_, updated) in list(self._state.items()):
            if now - updated >= self._fill_s.get(key, 0.0):
                del self._state[key]
                self._fill_s.pop(key, None)


class SqlBuckets:
    """Buckets in the ``rate_buckets`` table, shared by every replica.

    ``clock``: epoch seconds for tests; None (production) uses the database's clock, so
    replicas with skewed clocks still agree.
    """

    PRUNE_EVERY = 4096  # checks between deletes of idle (full) buckets

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] | None = None) -> None:
        self._engine = engine
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        # Imported here: a server with in-process buckets never loads the dialects' ORM
        # extras (the PostgreSQL one alone is ~17 ms of import and a few MB).
        from sqlalchemy.dialects import postgresql, sqlite

        self._insert = postgresql.insert if self._postgres else sqlite.insert
        self._inflight: set[asyncio.Future[Any]] = set()
        self._checks = 0
        self._longest_fill_s = 0.0

    async def close(self, timeout_s: float = 10.0) -> None:
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout_s)

    def _now(self) -> Any:
        if self._clock is not None:
            return literal(self._clock(), Float)
        if self._postgres:
            return cast(func.extract("epoch", func.statement_timestamp()), Float)
        return (func.julianday("now") - 2440587.5) * 86400.0

    def try_take(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> None:
        return None  # every check is a statement

    @shielded
    async def take(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> Decision:
        table = _TABLE
        c = table.c
        least, greatest = (func.least, func.greatest) if self._postgres else (func.min, func.max)
        insert = self._insert
        now = self._now()
        capacity = literal(float(policy.capacity), Float)
        refilled = least(
            capacity, c.tokens + greatest(0.0, now - c.updated_s) * policy.refill_per_s
        )
        admitted = refilled >= cost - _EPSILON
        statement = (
            insert(table)
            .values(key=key, tokens=policy.capacity - cost, updated_s=now, admitted=True)
            .on_conflict_do_update(
                index_elements=[c.key],
                set_={
                    "tokens": case((admitted, refilled - cost), else_=refilled),
                    "updated_s": greatest(c.updated_s, now),
                    "admitted": admitted,
                },
            )
            .returning(c.tokens, c.admitted)
        )
        async with self._engine.connect() as conn:
            if self._postgres:  # one statement, its own transaction: no BEGIN/COMMIT trips
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            tokens, was_admitted = (await conn.execute(statement)).one()
            if not self._postgres:
                await conn.commit()
        self._checks += 1
        self._longest_fill_s = max(self._longest_fill_s, policy.fill_s)
        if self._checks % self.PRUNE_EVERY == 0:
            await self._prune()
        return decide(policy, float(tokens), bool(was_admitted), cost)

    @shielded
    async def give_back(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> None:
        """Return tokens of a call that did not count (never above capacity)."""
        table = _TABLE
        least = func.least if self._postgres else func.min
        capacity = literal(float(policy.capacity), Float)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(table)
                .where(table.c.key == key)
                .values(tokens=least(capacity, table.c.tokens + cost))
            )

    async def _prune(self) -> None:
        """Delete buckets idle longer than any policy takes to fill (they are full)."""
        table = _TABLE
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(table).where(table.c.updated_s < self._now() - self._longest_fill_s)
            )
