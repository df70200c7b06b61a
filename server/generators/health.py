"""Whether the model providers work: shared by every generator one registry builds.

Each provider ("anthropic", "openai") counts consecutive failed requests; after
``degraded_after`` of them (or at once when the key is rejected) it is *degraded* until
a request succeeds. The composition root reads ``degraded``/``reason`` (or subscribes to
changes) to drive the gRPC health status and a metrics gauge; the generators keep
working either way (a degraded provider may recover on the next request).

``ModelObserver`` is what the generators report each request to; ``server.metrics.
Metrics`` satisfies it structurally (``model_request``, ``model_tokens``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from server.domain.results import TokenUsage

__all__ = ["ModelHealth", "ModelObserver", "NullObserver", "ProviderStatus", "observe_usage"]


class ModelObserver(Protocol):
    def model_request(self, outcome: str) -> None:
        """One request finished: ok, error, auth_error, timeout, rate_limited, invalid."""
        ...

    def model_tokens(self, kind: str, n: int) -> None:
        """``n`` tokens of ``kind`` (input, output, cache_read, cache_write) were used."""
        ...


class NullObserver:
    def model_request(self, outcome: str) -> None:
        pass

    def model_tokens(self, kind: str, n: int) -> None:
        pass


def observe_usage(observer: ModelObserver, usage: TokenUsage) -> None:
    observer.model_tokens("input", usage.input_tokens)
    observer.model_tokens("output", usage.output_tokens)
    observer.model_tokens("cache_read", usage.cache_read_tokens)
    observer.model_tokens("cache_write", usage.cache_write_tokens)


@dataclass(frozen=True)
class ProviderStatus:
    provider: str
    degraded: bool = False
    consecutive_failures: int = 0
    reason: str = ""  # the last failure, when degraded


class ModelHealth:
    """Per-provider failure streaks. Used from the event loop only."""

    def __init__(self, degraded_after: int = 3) -> None:
        self.degraded_after = max(1, degraded_after)
        self._status: dict[str, ProviderStatus] = {}
        self._listeners: list[Callable[[ProviderStatus], None]] = []

    def subscribe(self, listener: Callable[[ProviderStatus], None]) -> None:
        """Call ``listener`` whenever a provider becomes degraded or recovers."""
        self._listeners.append(listener)

    def status(self, provider: str) -> ProviderStatus:
        return self._status.get(provider, ProviderStatus(provider))

    def providers(self) -> dict[str, ProviderStatus]:
        return dict(self._status)

    @property
    def degraded(self) -> bool:
        return any(s.degraded for s in self._status.values())

    @property
    def reason(self) -> str:
        """Why, for every degraded provider ("" when none is)."""
        return "; ".join(f"{s.provider}: {s.reason}" for s in self._status.values() if s.degraded)

    def record_success(self, provider: str) -> None:
        self._set(ProviderStatus(provider))

    def record_failure(self, provider: str, reason: str, *, fatal: bool = False) -> None:
        """A failed request; ``fatal`` (a rejected key) degrades at once."""
        before = self.status(provider)
        failures = before.consecutive_failures + 1
        degraded = fatal or failures >= self.degraded_after
        self._set(ProviderStatus(provider, degraded, failures, reason if degraded else ""))

    def _set(self, new: ProviderStatus) -> None:
        old = self.status(new.provider)
        self._status[new.provider] = new
        if old.degraded != new.degraded:
            for listener in list(self._listeners):
                listener(new)
