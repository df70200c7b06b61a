"""FailureThrottle: a budget of failed authentications per peer address.

Each failed check (no token, unknown, malformed or revoked token) takes a token from the
peer's bucket. When the bucket is empty the failing call gets RESOURCE_EXHAUSTED instead
of UNAUTHENTICATED, and every call from that address is refused, before any token lookup,
until the next token refills: guessing tokens is slow and a flood of bad tokens costs no
database reads. Buckets live in this process (a per-replica budget is enough here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import timedelta

from loguru import logger

from server.auth.buckets import BucketPolicy, MemoryBuckets
from server.errors import QuotaViolation, ResourceExhausted

__all__ = ["FailureThrottle"]


class FailureThrottle:
    """``policy``: the failures a peer may have (burst) and their refill."""

    def __init__(
        self,
        policy: BucketPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._max_keys = max_keys
        self._buckets = MemoryBuckets(clock, max_keys=max_keys)
        self._blocked: dict[str, float] = {}  # peer key -> clock time the block ends

    @property
    def blocking(self) -> bool:
        """Whether any peer is (or was, until its next check) blocked: when not, a
        check has nothing to look up."""
        return bool(self._blocked)

    def check(self, key: str) -> None:
        """Raises ResourceExhausted while ``key`` is blocked."""
        until = self._blocked.get(key)
        if until is None:
            return
        left = until - self._clock()
        if left <= 0:
            del self._blocked[key]
            return
        raise self._refusal(key, left)

    async def failed(self, key: str) -> None:
        """Counts a failed authentication; raises ResourceExhausted once the budget is
        spent (the caller raises UNAUTHENTICATED otherwise)."""
        decision = await self._buckets.take(key, self._policy)
        if decision.admitted:
            return
        if len(self._blocked) >= self._max_keys:
            now = self._clock()
            self._blocked = {k: t for k, t in self._blocked.items() if t > now}
        self._blocked[key] = self._clock() + decision.retry_after_s
        logger.warning("too many failed authentications from {}; refusing it for now", key)
        raise self._refusal(key, decision.retry_after_s)

    def _refusal(self, key: str, wait_s: float) -> ResourceExhausted:
        per_minute = self._policy.refill_per_s * 60
        quota = f"failed authentications: {per_minute:g} per minute, burst {self._policy.capacity}"
        return ResourceExhausted(
            f"too many failed authentications from this address; retry in {wait_s:.3g} s",
            retry_after=timedelta(seconds=wait_s),
            violations=(QuotaViolation(f"client:{key}", quota),),
            reason="TOO_MANY_AUTH_FAILURES",
            trailers=(
                ("retry-after", str(max(1, math.ceil(wait_s)))),
                ("grpc-retry-pushback-ms", str(math.ceil(wait_s * 1000))),
            ),
        )
