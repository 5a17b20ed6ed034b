"""The one decision, as a table: every action × actor role × freeze × lock state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Policy
from bot.engine.freezes import FreezeWindow
from bot.engine.model import LockRecord, Release
from bot.engine.policy import (
    Action,
    Allowed,
    Ask,
    Facts,
    Grant,
    NeedsApprovals,
    Refusal,
    decide,
)
from bot.engine.quorum import requirement_of
from bot.engine.states import State

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
PROD = Policy(approvals_required=2, approvers=["U0ALICE", "U0BOB"], deployers=["U0CAROL"])
EMERGENCY = Policy(approvals_required=1, approvers=["U0DAN"])
ROLES = {"requester": "U0CAROL", "approver": "U0ALICE", "outsider": "U0MALLORY"}
FREEZE = FreezeWindow("quarter end", NOW + timedelta(days=1))
LOCK = LockRecord("tax-api", "production", "audit", "U0ALICE", NOW)
OLD, NEW, NEVER = "11111111-old", "22222222-new", "33333333-never"


def _release(state: State, **changes: object) -> Release:
    values: dict[str, object] = {
        "service": "tax-api",
        "environment": "production",
        "script": "tax-api",
        "version_id": NEW,
        "requested_by": "U0CAROL",
        "policy": "production",
        "state": state,
        "approvals_required": 2,
        "id": 7,
        "current_step": 0,
        **changes,
    }
    return Release(**values)  # type: ignore[arg-type]


def _facts(frozen: bool, locked: bool, release: Release | None = None, **more: object) -> Facts:
    grant = Grant("tax-api", "production", "production", PROD)
    more.setdefault("emergency", requirement_of("emergency", EMERGENCY))
    return Facts(
        grants=(grant,),
        members={},
        now=NOW,
        freeze=FREEZE if frozen else None,
        lock=LOCK if locked else None,
        release=release,
        emergency_policy="emergency",
        ran_before=frozenset({OLD}),
        live_version=NEW,
        requirements=(requirement_of("production", PROD),),
        **more,  # type: ignore[arg-type]
    )


# expected outcome by (action, role, frozen): "allow", "approvals", or the refusal's words
EXPECTED: dict[tuple[str, str, bool], str] = {}
for frozen in (False, True):
    for role in ROLES:
        deployer = role == "requester"
        EXPECTED[("deploy", role, frozen)] = (
            "only" if not deployer else "frozen until" if frozen else "approvals"
        )
        EXPECTED[("emergency deploy", role, frozen)] = (
            "only" if not deployer else "approvals" if frozen else "not frozen"
        )
        EXPECTED[("rollback to a version that ran", role, frozen)] = "allow" if deployer else "only"
        EXPECTED[("rollback to a version that never ran", role, frozen)] = (
            "never ran" if deployer else "only"
        )
        steer = role in ("requester", "approver")
        for verb in ("promote", "pause"):
            EXPECTED[(verb, role, frozen)] = "allow" if steer else "only"
        EXPECTED[("resume", role, frozen)] = "not paused" if steer else "only"
        EXPECTED[("cancel", role, frozen)] = "allow" if steer else "only the requester"
        EXPECTED[("approve", role, frozen)] = {
            "approver": "allow",
            "requester": "only",  # not an approver
            "outsider": "only",
        }[role]
        # the release's requester or an approver of the emergency policy, always with approvals
        EXPECTED[("restore-db", role, frozen)] = "approvals" if steer else "only"
        for rail in ("lock", "unlock", "freeze", "unfreeze"):
            EXPECTED[(rail, role, frozen)] = "allow" if deployer else "only"


def _ask(name: str, actor: str, frozen: bool, locked: bool) -> tuple[Ask, Facts]:
    f = _facts(frozen, locked)
    match name:
        case "deploy":
            return Ask(Action.DEPLOY, actor, version_id=NEW), f
        case "emergency deploy":
            return Ask(Action.DEPLOY, actor, emergency=True, reason="outage", version_id=NEW), f
        case "rollback to a version that ran":
            return Ask(Action.ROLLBACK, actor, version_id=OLD), f
        case "rollback to a version that never ran":
            return Ask(Action.ROLLBACK, actor, version_id=NEVER), f
        case "promote" | "pause" | "resume":
            release = _release(State.VERIFYING)
            return Ask(Action(name), actor), _facts(frozen, locked, release)
        case "cancel":
            return Ask(Action.CANCEL, actor), _facts(frozen, locked, _release(State.APPROVED))
        case "approve":
            release = _release(State.AWAITING_APPROVAL)
            return Ask(Action.APPROVE, actor), _facts(frozen, locked, release)
        case "restore-db":
            release = _release(State.SUCCEEDED, d1_bookmark="bm-1")
            facts = _facts(frozen, locked, release, emergency=requirement_of("production", PROD))
            return Ask(Action.RESTORE_DB, actor), facts
    return Ask(Action(name), actor), f


CASES = [
    (name, role, frozen, locked) for (name, role, frozen) in EXPECTED for locked in (False, True)
]


@pytest.mark.parametrize(("name", "role", "frozen", "locked"), CASES)
def test_the_decision_table(name: str, role: str, frozen: bool, locked: bool) -> None:
    ask, facts = _ask(name, ROLES[role], frozen, locked)
    decision = decide(ask, facts)
    expected = EXPECTED[(name, role, frozen)]
    if expected == "allow":
        assert isinstance(decision, Allowed), decision
    elif expected == "approvals":
        assert isinstance(decision, NeedsApprovals), decision
    else:
        assert isinstance(decision, Refusal), decision
        assert expected in str(decision), str(decision)


def test_a_break_glass_deploy_needs_the_stricter_of_both_policies() -> None:
    decision = decide(
        Ask(Action.DEPLOY, "U0CAROL", emergency=True, reason="outage"), _facts(True, False)
    )
    assert isinstance(decision, NeedsApprovals)
    assert decision.required == 2  # production's two beat the emergency policy's one
    assert [r.policy for r in decision.requirements] == ["production", "emergency"]


def test_freeze_needs_every_service_that_has_the_environment() -> None:
    open_policy = Policy()  # everyone may deploy promo-site
    grants = (
        Grant("promo-site", "production", "open", open_policy),
        Grant("tax-api", "production", "production", PROD),
    )
    facts = Facts(grants=grants, members={}, now=NOW)
    decision = decide(Ask(Action.UNFREEZE, "U0MALLORY"), facts)
    assert isinstance(decision, Refusal)
    assert "tax-api/production" in str(decision)
    assert isinstance(decide(Ask(Action.UNFREEZE, "U0CAROL"), facts), Allowed)


def test_staging_first_objection_refuses_the_deploy() -> None:
    from bot.engine.words import words

    facts = _facts(
        False,
        False,
        staging_refusal=words("v1.4.2 succeeded in staging with different script content"),
    )
    decision = decide(Ask(Action.DEPLOY, "U0CAROL"), facts)
    assert isinstance(decision, Refusal) and "different script content" in str(decision)
