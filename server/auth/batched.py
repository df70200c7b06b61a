"""BatchedBuckets: a replica reserves tokens from a shared bucket a batch at a time.

A shared bucket (``SqlBuckets`` on PostgreSQL) costs one database statement per check;
for the cheap ``requests`` bucket that statement would cost more than the read it
guards. So a replica takes ``policy.batch`` tokens in one check and hands them out
locally; a policy with ``batch == 1`` (``create``) goes to the shared bucket every time.

Why it stays correct:

- never more admitted than the shared bucket allows: every admitted call spends a token
  the shared bucket gave out;
- reserved tokens are kept at most ``hold_s`` (then dropped, not given back), so a
  replica cannot save tokens up and spend them later than the bucket would have;
- near the limit, when a whole batch is refused, one token is asked for, so the last
  tokens are still used and a refusal's retry-after is exact for one call. The cost of
  the scheme is under-admission of at most ``batch - 1`` tokens per replica and client.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from server.auth.buckets import BucketPolicy, Buckets, Decision

__all__ = ["BatchedBuckets"]

_EPSILON = 1e-9


@dataclass(slots=True)
class _Stock:
    tokens: float  # reserved, not yet handed out
    expires: float  # clock time after which they are dropped
    shared: Decision  # the shared bucket's state when they were reserved


class BatchedBuckets:
    """``Buckets`` over a shared ``Buckets``, reserving ``policy.batch`` tokens at once.

    ``clock``: monotonic seconds (injectable for tests). ``max_keys``: reservations kept
    before expired ones are forgotten.
    """

    def __init__(
        self,
        shared: Buckets,
        *,
        hold_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self._shared = shared
        self._hold_s = hold_s
        self._clock = clock
        self._max_keys = max_keys
        self._stock: dict[str, _Stock] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.shared_checks = 0  # checks that reached the shared bucket

    async def take(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> Decision:
        if policy.batch <= 1:
            self.shared_checks += 1
            return await self._shared.take(key, policy, cost)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:  # one reservation in flight per key; the others wait for it
            now = self._clock()
            stock = self._spend_stock(key, cost, now)
            if stock is not None:
                decision = _local(policy, stock)
            else:
                decision = await self._reserve(key, policy, cost, now)
        if len(self._locks) > self._max_keys:
            self._prune()
        return decision

    def try_take(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> bool | None:
        """True when this replica's reservation holds the tokens and no reservation is
        in flight (calls waiting for one go first); else None: ``take``."""
        if policy.batch <= 1:
            return None
        lock = self._locks.get(key)
        if lock is not None and lock.locked():
            return None
        return True if self._spend_stock(key, cost, self._clock()) is not None else None

    def _spend_stock(self, key: str, cost: float, now: float) -> _Stock | None:
        """The live reservation of ``key``, ``cost`` spent from it, if it holds that much."""
        stock = self._stock.get(key)
        if stock is not None and stock.expires > now and stock.tokens >= cost - _EPSILON:
            stock.tokens -= cost
            return stock
        return None

    async def _reserve(self, key: str, policy: BucketPolicy, cost: float, now: float) -> Decision:
        want = max(cost, float(policy.batch))
        self.shared_checks += 1
        decision = await self._shared.take(key, policy, want)
        if not decision.admitted and want > cost:
            want = cost
            self.shared_checks += 1
            decision = await self._shared.take(key, policy, cost)
        if not decision.admitted:
            self._stock.pop(key, None)
            return decision
        stock = self._stock[key] = _Stock(want - cost, now + self._hold_s, decision)
        return _local(policy, stock)

    async def give_back(self, key: str, policy: BucketPolicy, cost: float = 1.0) -> None:
        """Into the local reservation if one is live, else to the shared bucket."""
        stock = self._stock.get(key)
        if policy.batch > 1 and stock is not None and stock.expires > self._clock():
            stock.tokens += cost
            return
        await self._shared.give_back(key, policy, cost)

    def _prune(self) -> None:
        now = self._clock()
        for key, lock in list(self._locks.items()):
            stock = self._stock.get(key)
            if not lock.locked() and (stock is None or stock.expires <= now):
                del self._locks[key]
                self._stock.pop(key, None)


def _local(policy: BucketPolicy, stock: _Stock) -> Decision:
    """An admitted decision: what the shared bucket had left plus what this replica holds."""
    return Decision(
        admitted=True,
        limit=policy.capacity,
        remaining=stock.shared.remaining + math.floor(stock.tokens + _EPSILON),
        retry_after_s=0.0,
        reset_s=stock.shared.reset_s,
    )
