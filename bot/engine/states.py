"""Release states, events, and the transition table.

The table is data: ``TRANSITIONS[(state, event)] -> next state``. Anything not in it is an
illegal transition (see :func:`bot.engine.machine.apply`).
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    REQUESTED = "requested"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    DEPLOYING = "deploying"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    @property
    def is_active(self) -> bool:
        """In flight: approved and not over yet (the engine drives it)."""
        return self in ACTIVE

    @property
    def holds_slot(self) -> bool:
        """Changing traffic on its service/environment: nothing else may deploy there.

        Approved releases wait in line for the slot (the queue)."""
        return self in HOLDS_SLOT


class Event(StrEnum):
    SUBMIT = "submit"  # needs approval
    AUTO_APPROVE = "auto_approve"  # policy needs no approval
    APPROVE = "approve"  # enough approvals gathered
    REJECT = "reject"
    EXPIRE = "expire"
    CANCEL = "cancel"
    START = "start"  # deployment begins (first step's intent)
    STEP_DEPLOYED = "step_deployed"  # a step's deployment is live; verification begins
    NEXT_STEP = "next_step"  # gate passed, more steps to go
    VERIFIED = "verified"  # last gate passed
    ROLL_BACK = "roll_back"  # stable version back at 100%
    FAIL = "fail"  # could not deploy; stable left (or put back) at 100%


TERMINAL = frozenset(
    {State.SUCCEEDED, State.ROLLED_BACK, State.FAILED, State.CANCELLED, State.EXPIRED}
)
ACTIVE = frozenset({State.APPROVED, State.DEPLOYING, State.VERIFYING})
HOLDS_SLOT = frozenset({State.DEPLOYING, State.VERIFYING})

TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.REQUESTED, Event.SUBMIT): State.AWAITING_APPROVAL,
    (State.REQUESTED, Event.AUTO_APPROVE): State.APPROVED,
    (State.REQUESTED, Event.CANCEL): State.CANCELLED,
    (State.REQUESTED, Event.FAIL): State.FAILED,
    (State.AWAITING_APPROVAL, Event.APPROVE): State.APPROVED,
    (State.AWAITING_APPROVAL, Event.REJECT): State.CANCELLED,
    (State.AWAITING_APPROVAL, Event.EXPIRE): State.EXPIRED,
    (State.AWAITING_APPROVAL, Event.CANCEL): State.CANCELLED,
    (State.APPROVED, Event.START): State.DEPLOYING,
    (State.APPROVED, Event.CANCEL): State.CANCELLED,
    (State.APPROVED, Event.FAIL): State.FAILED,
    (State.DEPLOYING, Event.STEP_DEPLOYED): State.VERIFYING,
    (State.DEPLOYING, Event.ROLL_BACK): State.ROLLED_BACK,
    (State.DEPLOYING, Event.FAIL): State.FAILED,
    (State.VERIFYING, Event.NEXT_STEP): State.DEPLOYING,
    (State.VERIFYING, Event.VERIFIED): State.SUCCEEDED,
    (State.VERIFYING, Event.ROLL_BACK): State.ROLLED_BACK,
    (State.VERIFYING, Event.FAIL): State.FAILED,
}
