"""Entries of a job's append-only event log (the ``detail`` of a JobEvent)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.domain.job import Job

__all__ = ["EventKind", "JobEventRecord"]


class EventKind:
    """The detail kinds a stored event can have (see JobEvent.detail in the proto)."""

    STATE_CHANGED = "state_changed"  # {"from": state|None, "to": state, "reason": str}
    PHASE_CHANGED = "phase_changed"  # {"phase": phase, "iteration": int}
    LOG = "log"  # {"message": str}
    ITERATION_FINISHED = "iteration_finished"  # {"iteration", "passed", "errors", "test_results"}


@dataclass(frozen=True)
class JobEventRecord:
    job_id: str
    seq: int  # 1, 2, 3 ... per job, no gaps
    time: datetime
    kind: str
    detail: dict[str, Any]
    job: Job  # the job right after this event
