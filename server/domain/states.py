"""Job states and phases, and the one table of legal state transitions."""

from __future__ import annotations

import enum

__all__ = ["TERMINAL_STATES", "IllegalTransition", "JobState", "Phase", "check_transition"]


class JobState(enum.StrEnum):
    QUEUED = "QUEUED"  # accepted and durable, waiting for a worker
    RUNNING = "RUNNING"  # a worker holds the lease and runs the pipeline
    SUCCEEDED = "SUCCEEDED"  # the plugin passed every gate; the artifact is stored
    FAILED = "FAILED"  # gave up: iteration budget, timeout or an unrecoverable error
    CANCELLED = "CANCELLED"  # a client cancelled it; its processes were killed


class Phase(enum.StrEnum):
    """Where a RUNNING job is inside one iteration of the pipeline."""

    SETUP = "SETUP"  # workspace and toolchain links
    GENERATING = "GENERATING"  # the generator writes files
    BUILDING = "BUILDING"  # tsc type check and build
    LINTING = "LINTING"  # the linter
    TESTING = "TESTING"  # vitest
    VALIDATING = "VALIDATING"  # static checks of the spec's components, then review
    PACKAGING = "PACKAGING"  # tar.gz + sha256


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

# The only legal moves. RUNNING -> QUEUED is a requeue (lease released or expired).
_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.QUEUED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: JobState, target: JobState) -> None:
        super().__init__(f"job cannot move from {current} to {target}")
        self.current = current
        self.target = target


def check_transition(current: JobState, target: JobState) -> None:
    """Raise IllegalTransition unless ``current -> target`` is in the table."""
    if target not in _TRANSITIONS[current]:
        raise IllegalTransition(current, target)
