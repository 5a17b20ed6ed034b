"""The transition table, tested as a table."""

import pytest

from bot.engine.errors import IllegalTransition
from bot.engine.machine import allowed_events, next_state
from bot.engine.states import TERMINAL, TRANSITIONS, Event, State

EXPECTED = [
    (State.REQUESTED, Event.SUBMIT, State.AWAITING_APPROVAL),
    (State.REQUESTED, Event.AUTO_APPROVE, State.APPROVED),
    (State.AWAITING_APPROVAL, Event.APPROVE, State.APPROVED),
    (State.AWAITING_APPROVAL, Event.REJECT, State.CANCELLED),
    (State.AWAITING_APPROVAL, Event.EXPIRE, State.EXPIRED),
    (State.APPROVED, Event.START, State.DEPLOYING),
    (State.DEPLOYING, Event.STEP_DEPLOYED, State.VERIFYING),
    (State.VERIFYING, Event.NEXT_STEP, State.DEPLOYING),
    (State.VERIFYING, Event.VERIFIED, State.SUCCEEDED),
    (State.VERIFYING, Event.ROLL_BACK, State.ROLLED_BACK),
    (State.DEPLOYING, Event.FAIL, State.FAILED),
]


@pytest.mark.parametrize(("state", "event", "after"), EXPECTED)
def test_listed_transitions(state: State, event: Event, after: State) -> None:
    assert next_state(state, event) is after


@pytest.mark.parametrize("state", sorted(TERMINAL))
@pytest.mark.parametrize("event", list(Event))
def test_terminal_states_accept_nothing(state: State, event: Event) -> None:
    with pytest.raises(IllegalTransition) as err:
        next_state(state, event)
    assert state.value.replace("_", " ") in str(err.value)


def test_every_pair_outside_the_table_is_illegal() -> None:
    for state in State:
        for event in Event:
            if (state, event) in TRANSITIONS:
                assert next_state(state, event) is TRANSITIONS[(state, event)]
            else:
                with pytest.raises(IllegalTransition):
                    next_state(state, event)


def test_cancel_only_before_deployment_starts() -> None:
    cancellable = {s for s in State if Event.CANCEL in allowed_events(s)}
    assert cancellable == {State.REQUESTED, State.AWAITING_APPROVAL, State.APPROVED}


def test_every_state_is_reachable_from_requested() -> None:
    seen = {State.REQUESTED}
    frontier = [State.REQUESTED]
    while frontier:
        state = frontier.pop()
        for event in allowed_events(state):
            after = next_state(state, event)
            if after not in seen:
                seen.add(after)
                frontier.append(after)
    assert seen == set(State)
