"""The seam between the pipeline and the job's durable record (implemented by the worker)."""

from __future__ import annotations

from typing import Protocol

from server.domain.results import IterationRecord
from server.domain.states import Phase

__all__ = ["JobReporter"]


class JobReporter(Protocol):
    async def phase(
        self, phase: Phase, *, iteration: int, progress: int, message: str = ""
    ) -> None:
        """Record that the job entered ``phase`` (an event; progress is 0-100)."""
        ...

    async def log(self, message: str) -> None:
        """Record a human-readable progress line (an event)."""
        ...

    async def iteration_finished(self, record: IterationRecord) -> None:
        """Persist one iteration's sources and results (an event)."""
        ...
