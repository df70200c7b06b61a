"""States, transitions and the proto<->domain enum mapping."""

from __future__ import annotations

import pytest
from auton8n.v1 import plugin_service_pb2 as pb

from server.api import convert
from server.domain.states import (
    TERMINAL_STATES,
    IllegalTransition,
    JobState,
    Phase,
    check_transition,
)


def test_terminal_states_never_change() -> None:
    for state in TERMINAL_STATES:
        for target in JobState:
            with pytest.raises(IllegalTransition):
                check_transition(state, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (JobState.QUEUED, JobState.RUNNING),
        (JobState.QUEUED, JobState.CANCELLED),
        (JobState.RUNNING, JobState.SUCCEEDED),
        (JobState.RUNNING, JobState.FAILED),
        (JobState.RUNNING, JobState.CANCELLED),
        (JobState.RUNNING, JobState.QUEUED),
    ],
)
def test_legal_transitions(current: JobState, target: JobState) -> None:
    check_transition(current, target)


def test_queued_cannot_succeed_directly() -> None:
    with pytest.raises(IllegalTransition):
        check_transition(JobState.QUEUED, JobState.SUCCEEDED)


def test_every_state_maps_one_to_one() -> None:
    wire = {v for k, v in pb.JobState.items() if k != "JOB_STATE_UNSPECIFIED"}
    mapped = {convert._STATE_TO_PB[s] for s in JobState}
    assert mapped == wire and len(mapped) == len(JobState)
    for state in JobState:
        assert convert.state_from_proto(convert._STATE_TO_PB[state]) is state
        assert pb.JobState.Name(convert._STATE_TO_PB[state]) == f"JOB_STATE_{state.value}"


def test_every_phase_maps_one_to_one() -> None:
    for phase in Phase:
        assert pb.Phase.Name(convert._PHASE_TO_PB[phase]) == f"PHASE_{phase.value}"
    assert len(convert._PHASE_TO_PB) == len(pb.Phase.keys()) - 1
