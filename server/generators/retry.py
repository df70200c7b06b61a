"""Retries of one model call: a value object, a pure backoff and a per-job budget.

Three words stay apart (STYLE.md): an *iteration* is a repair round of the pipeline, an
*attempt* a worker run of a job, a *retry* one more try of a single HTTP request after a
transient failure. Only retries live here.

The provider adapters translate their SDK's exceptions into ``ModelCallError`` (kind,
HTTP status, retry-after); ``Retry.run`` retries the retryable ones with jittered
exponential backoff, waiting at least what the server asked for, and spends one unit of
the job's ``RetryBudget`` per retry. When the budget is spent the last error is raised
as ``RetriesExhausted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC
from enum import Enum
from types import ModuleType
from typing import Any, TypeVar

__all__ = [
    "FailureKind",
    "ModelCallError",
    "RetriesExhausted",
    "Retry",
    "RetryBudget",
    "failure_for_status",
    "parse_retry_after",
    "sdk_failures",
]

_T = TypeVar("_T")


class FailureKind(Enum):
    """Why a model request failed, which decides what happens next."""

    TRANSIENT = "transient"  # 429, 529, 5xx, 408/409, timeout, connection: retry
    AUTH = "auth"  # 401/403: the key is wrong; fail the job at once
    NOT_FOUND = "not_found"  # 404: unknown model id (or endpoint)
    REJECTED = "rejected"  # other 4xx: the request itself is wrong; retrying cannot help


class ModelCallError(Exception):
    """One failed model request, provider-neutral.

    ``outcome`` is the metrics label (ok/error/auth_error/timeout/rate_limited/invalid);
    the message never contains the API key.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind,
        status: int | None = None,
        retry_after_s: float | None = None,
        outcome: str = "error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        self.outcome = outcome

    @property
    def retryable(self) -> bool:
        return self.kind is FailureKind.TRANSIENT


class RetriesExhausted(Exception):
    """The job's retry budget is spent; ``last`` is the final failure."""

    def __init__(self, attempts: int, budget: int, last: ModelCallError) -> None:
        super().__init__(
            f"the model API is unavailable: {attempts} attempt(s) of this request failed, "
            f"last with {last.message}; the job's retry budget ({budget} retries) is spent"
        )
        self.attempts = attempts
        self.last = last


class RetryBudget:
    """Retries left for one job, over all its model calls (not thread-safe: one loop)."""

    def __init__(self, total: int) -> None:
        self.total = max(0, total)
        self.used = 0

    def take(self) -> bool:
        """Spend one retry; False when none is left."""
        if self.used >= self.total:
            return False
        self.used += 1
        return True


@dataclass(frozen=True)
class Retry:
    """Backoff parameters. ``delay`` is pure; ``run`` applies it to a call."""

    initial_s: float = 1.0
    max_s: float = 30.0
    multiplier: float = 2.0
    max_retry_after_s: float = 120.0

    def delay(self, retry: int, retry_after_s: float | None, rand: float) -> float:
        """Seconds to wait before ``retry`` (1-based), ``rand`` uniform in [0, 1).

        Equal jitter: half the exponential step plus a random share of the other half,
        so concurrent jobs spread out but never hammer. A server's retry-after is a
        floor (capped at ``max_retry_after_s``).
        """
        step = min(self.max_s, self.initial_s * self.multiplier ** max(0, retry - 1))
        jittered = step / 2 + step / 2 * min(max(rand, 0.0), 1.0)
        if retry_after_s is not None and retry_after_s > 0:
            return max(jittered, min(retry_after_s, self.max_retry_after_s))
        return jittered

    async def run(
        self,
        call: Callable[[], Awaitable[_T]],
        *,
        budget: RetryBudget,
        on_failure: Callable[[ModelCallError], None] = lambda _e: None,
        on_retry: Callable[[ModelCallError, float], None] = lambda _e, _d: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> _T:
        """Await ``call()`` until it succeeds, fails for good or the budget is spent.

        Raises the non-retryable ModelCallError as is, RetriesExhausted (from the last
        error) when the budget is spent. CancelledError passes through untouched.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except ModelCallError as exc:
                on_failure(exc)
                if not exc.retryable:
                    raise
                if not budget.take():
                    raise RetriesExhausted(attempt, budget.total, exc) from exc
                wait = self.delay(attempt, exc.retry_after_s, rand())
                on_retry(exc, wait)
                await sleep(wait)


def failure_for_status(status: int, text: str, retry_after_s: float | None) -> ModelCallError:
    """An HTTP error status -> a provider-neutral failure."""
    if status in (401, 403):
        return ModelCallError(text, kind=FailureKind.AUTH, status=status, outcome="auth_error")
    if status == 429:
        return ModelCallError(
            text,
            kind=FailureKind.TRANSIENT,
            status=status,
            retry_after_s=retry_after_s,
            outcome="rate_limited",
        )
    if status in (408, 409) or status >= 500:  # 529: overloaded
        return ModelCallError(
            text, kind=FailureKind.TRANSIENT, status=status, retry_after_s=retry_after_s
        )
    if status == 404:
        return ModelCallError(text, kind=FailureKind.NOT_FOUND, status=status)
    return ModelCallError(text, kind=FailureKind.REJECTED, status=status)


@contextlib.contextmanager
def sdk_failures(
    sdk: ModuleType, timeout_s: float, status_text: Callable[[Any], str]
) -> Iterator[None]:
    """The model SDK's exceptions as ModelCallError. ``anthropic`` and ``openai`` are
    generated from one template and share the hierarchy; ``status_text`` describes an
    APIStatusError in the provider's words."""
    try:
        yield
    except sdk.APITimeoutError as exc:  # before APIConnectionError: it is one
        raise ModelCallError(
            f"timed out after {timeout_s:.0f}s", kind=FailureKind.TRANSIENT, outcome="timeout"
        ) from exc
    except sdk.APIConnectionError as exc:
        raise ModelCallError(
            f"connection failed: {exc.message}", kind=FailureKind.TRANSIENT
        ) from exc
    except sdk.APIStatusError as exc:
        retry_after_s = parse_retry_after(dict(exc.response.headers))
        raise failure_for_status(exc.status_code, status_text(exc)[:500], retry_after_s) from exc
    except sdk.APIResponseValidationError as exc:
        raise ModelCallError(
            f"unexpected response: {exc.message}", kind=FailureKind.TRANSIENT, outcome="invalid"
        ) from exc


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
