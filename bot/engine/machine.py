"""Apply an event to a state, by the transition table; nothing else changes state."""

from __future__ import annotations

from bot.engine.errors import IllegalTransition
from bot.engine.states import TRANSITIONS, Event, State


def next_state(state: State, event: Event) -> State:
    """The state after ``event``, or :class:`IllegalTransition`.

    >>> next_state(State.APPROVED, Event.START)
    <State.DEPLOYING: 'deploying'>
    """
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state.value, event.value) from None


def allowed_events(state: State) -> list[Event]:
    return [event for (s, event) in TRANSITIONS if s is state]
