"""What audit entry each state change writes: one entry per transition, named by its event."""

from __future__ import annotations

from typing import Any

from bot.engine.model import AuditEntry, Release
from bot.engine.states import Event, State

#: event -> the action recorded for it (a past-tense fact).
ACTIONS: dict[Event, str] = {
    Event.SUBMIT: "release.awaiting_approval",
    Event.AUTO_APPROVE: "release.auto_approved",
    Event.APPROVE: "release.approved",
    Event.REJECT: "release.rejected",
    Event.EXPIRE: "release.expired",
    Event.CANCEL: "release.cancelled",
    Event.START: "release.started",
    Event.STEP_DEPLOYED: "release.step_deployed",
    Event.NEXT_STEP: "release.next_step",
    Event.VERIFIED: "release.succeeded",
    Event.ROLL_BACK: "release.rolled_back",
    Event.FAIL: "release.failed",
}


def transition_entry(
    release: Release,
    actor: str,
    event: Event,
    before: State,
    at: Any,
    **detail: Any,
) -> AuditEntry:
    """The audit entry for ``release`` moving from ``before`` by ``event`` (already applied)."""
    return AuditEntry(
        actor=actor,
        action=ACTIONS[event],
        at=at,
        release_id=release.id,
        release_key=release.key if release.id is not None else None,
        service=release.service,
        environment=release.environment,
        before=before.value,
        after=release.state.value,
        detail={k: v for k, v in detail.items() if v is not None},
    )


def created_entry(release: Release, at: Any) -> AuditEntry:
    return AuditEntry(
        actor=release.requested_by,
        action="release.requested",
        at=at,
        service=release.service,
        environment=release.environment,
        before=None,
        after=State.REQUESTED.value,
        detail={
            "kind": release.kind.value,
            "version_id": release.version_id,
            "version_tag": release.version_tag,
            "stable_version_id": release.stable_version_id,
            "strategy": release.strategy.value,
            "plan": list(release.plan),
            "reason": release.reason,
            "policy": release.policy,
        },
    )
