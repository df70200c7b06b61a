"""RateLimitInterceptor: token buckets per client and a cap on concurrent WatchJob streams.

Keys: the caller's API token id (``token:<id>``), or the peer's address without its
port (``peer:<ip>``) when auth is off. Two buckets (``server.auth.buckets``):

- ``requests``: every call of the plugin service, cheap and generous (reads, watches,
  cancels, and CreatePlugin too);
- ``create``: CreatePlugin only, the expensive one (default 10 per hour, burst 5). A
  CreatePlugin that fails (invalid spec, draining) gives its create token back: only
  calls that are accepted count against the job quota.

WatchJob streams are also capped per client and replica (they hold a server task each).
Health and reflection are exempt. A refusal is RESOURCE_EXHAUSTED with ErrorInfo
(reason RATE_LIMITED or TOO_MANY_WATCHES), RetryInfo and QuotaFailure, and the trailers
``retry-after`` (whole seconds), ``grpc-retry-pushback-ms`` (honoured by grpc's own retry
policy), ``x-ratelimit-limit`` (bucket capacity), ``x-ratelimit-remaining`` and
``x-ratelimit-reset`` (seconds until the bucket is full). Only refusals carry them:
successful calls send no extra metadata.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from server.api.handlers import MethodInterceptor, rewrap
from server.api.interceptors import After, Context, guard
from server.auth.buckets import BucketPolicy, Buckets, Decision
from server.auth.principal import client_key, principal_or_none
from server.errors import QuotaViolation, ResourceExhausted
from server.metrics import Metrics
from server.settings import Settings

__all__ = ["RateLimitInterceptor", "RateLimits"]

_SERVICE = "/auton8n.v1.PluginService/"
CREATE_METHOD = _SERVICE + "CreatePlugin"
WATCH_METHOD = _SERVICE + "WatchJob"
_EXEMPT_PREFIXES = (
    f"/{health.SERVICE_NAME}/",
    f"/{reflection.SERVICE_NAME}/",
    "/grpc.reflection.v1.ServerReflection/",
)


@dataclass(frozen=True, slots=True)
class RateLimits:
    create: BucketPolicy | None  # None: no limit
    requests: BucketPolicy | None
    max_watches: int  # concurrent WatchJob streams per client; 0: no limit

    @classmethod
    def from_settings(cls, s: Settings) -> RateLimits:
        create = requests = None
        if s.rate_limit_create_per_hour > 0:
            create = BucketPolicy(
                "create", s.rate_limit_create_burst, s.rate_limit_create_per_hour / 3600
            )
        if s.rate_limit_requests_per_s > 0:
            burst = s.rate_limit_requests_burst
            requests = BucketPolicy(
                "requests",
                burst,
                s.rate_limit_requests_per_s,
                batch=_batch(s.rate_limit_shared_batch, s.rate_limit_requests_per_s, burst),
            )
        return cls(create, requests, s.max_watches_per_client)


def _batch(configured: int, refill_per_s: float, burst: int) -> int:
    """Tokens reserved per shared-bucket check: the setting, or a tenth of a second of
    the refill when that is more (a statement per batch must not cap a fast client's
    calls at batch / round-trip), never more than the burst."""
    return max(1, min(burst, max(configured, math.ceil(refill_per_s / 10))))


def _describe(policy: BucketPolicy) -> str:
    if policy.name == "create":
        return f"CreatePlugin: {policy.refill_per_s * 3600:g} per hour, burst {policy.capacity}"
    return f"requests: {policy.refill_per_s:g} per second, burst {policy.capacity}"


def _refusal(method: str, policy: BucketPolicy, key: str, d: Decision) -> ResourceExhausted:
    wait_ms = math.ceil(d.retry_after_s * 1000)
    return ResourceExhausted(
        f"rate limit of {_describe(policy)} reached; retry in {d.retry_after_s:.3g} s",
        retry_after=timedelta(seconds=d.retry_after_s),
        violations=(QuotaViolation(f"client:{key}", _describe(policy)),),
        reason="RATE_LIMITED",
        metadata={"bucket": policy.name, "method": method.rpartition("/")[2]},
        trailers=(
            ("retry-after", str(max(1, math.ceil(d.retry_after_s)))),
            ("grpc-retry-pushback-ms", str(wait_ms)),
            ("x-ratelimit-limit", str(d.limit)),
            ("x-ratelimit-remaining", str(d.remaining)),
            ("x-ratelimit-reset", str(math.ceil(d.reset_s))),
        ),
    )


class RateLimitInterceptor(MethodInterceptor):
    """Put it after the AuthInterceptor (it keys buckets by the caller's token)."""

    def __init__(self, limits: RateLimits, buckets: Buckets, metrics: Metrics) -> None:
        super().__init__()
        self._limits = limits
        self._buckets = buckets
        self._metrics = metrics
        self._watches: dict[str, int] = {}  # client key -> open WatchJob streams

    def open_watches(self, key: str) -> int:
        return self._watches.get(key, 0)

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if method.startswith(_EXEMPT_PREFIXES):
            return handler
        admit = functools.partial(self._admit, method)
        return rewrap(handler, lambda _kind, behavior: guard(method, behavior, admit))

    def _admit(
        self, method: str, context: Context
    ) -> After | Coroutine[Any, Any, After | None] | None:
        principal = principal_or_none()
        token_id = principal.token_id if principal is not None else None
        key = client_key(token_id, "" if token_id else context.peer())
        requests = self._limits.requests
        if requests is not None and not self._buckets.try_take(f"{requests.name}:{key}", requests):
            # Refused (take() again, for the refusal's details; a refused check takes
            # nothing), or a shared bucket, which takes a statement.
            return self._admit_later(method, key)
        return self._admit_method(method, key)

    async def _admit_later(self, method: str, key: str) -> After | None:
        requests = self._limits.requests
        assert requests is not None
        await self._take(method, requests, key)
        then = self._admit_method(method, key)
        return await then if isinstance(then, Coroutine) else then

    def _admit_method(
        self, method: str, key: str
    ) -> After | Coroutine[Any, Any, After | None] | None:
        """The checks of particular methods, after the requests bucket admitted the call."""
        limits = self._limits
        if method == CREATE_METHOD and limits.create is not None:
            return self._admit_create(method, limits.create, key)
        if method == WATCH_METHOD and limits.max_watches > 0:
            return self._open_watch(method, key, limits.max_watches)
        return None

    async def _admit_create(self, method: str, policy: BucketPolicy, key: str) -> After:
        await self._take(method, policy, key)
        return functools.partial(self._give_back_on_failure, policy, key)

    async def _take(self, method: str, policy: BucketPolicy, key: str) -> None:
        decision = await self._buckets.take(f"{policy.name}:{key}", policy)
        if not decision.admitted:
            self._metrics.rate_limited(method)
            raise _refusal(method, policy, key, decision)

    async def _give_back_on_failure(
        self, policy: BucketPolicy, key: str, failure: BaseException | None
    ) -> None:
        # A refused or failed create made no job. Not on cancellation: it may have.
        if isinstance(failure, Exception):
            await self._buckets.give_back(f"{policy.name}:{key}", policy)

    def _open_watch(self, method: str, key: str, cap: int) -> After:
        open_ = self._watches.get(key, 0)
        if open_ >= cap:
            self._metrics.rate_limited(method)
            raise ResourceExhausted(
                f"at most {cap} concurrent WatchJob streams per client; close one first",
                retry_after=None,
                violations=(
                    QuotaViolation(f"client:{key}", f"WatchJob: {cap} concurrent streams"),
                ),
                reason="TOO_MANY_WATCHES",
                metadata={"limit": str(cap)},
                trailers=(("x-ratelimit-limit", str(cap)), ("x-ratelimit-remaining", "0")),
            )
        self._watches[key] = open_ + 1

        async def close(_failure: BaseException | None) -> None:
            left = self._watches.get(key, 1) - 1
            if left > 0:
                self._watches[key] = left
            else:
                self._watches.pop(key, None)

        return close
