"""Who may do what: the policy as a pure function over (policy, release, votes, person)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Freeze, Policy
from bot.engine.freezes import active_freeze
from bot.engine.model import FreezeRecord, Release, Vote
from bot.engine.policies import (
    approvals,
    cancel_refusal,
    deploy_refusal,
    listed,
    progress_line,
    vote_refusal,
)
from bot.engine.states import State

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday
PROD = Policy(approvals_required=2, approvers=["S0RELEASEMGRS", "U0ALICE"])
STAGING = Policy(approvals_required=0)
MEMBERS = {"S0RELEASEMGRS": {"U0BOB", "U0CAROL"}}


def release(**changes: object) -> Release:
    base = Release(
        service="tax-api",
        environment="production",
        script="tax-api",
        version_id="v-new",
        requested_by="U0CAROL",
        policy="production",
        state=State.AWAITING_APPROVAL,
        approvals_required=2,
        expires_at=NOW + timedelta(hours=1),
        id=7,
    )
    return base.copy(**changes)


def vote(user: str, approve: bool = True, version: str = "v-new") -> Vote:
    return Vote(7, version, user, approve, NOW)


def refusal(person: str, votes=(), version: str = "v-new", **changes: object) -> str | None:
    return vote_refusal(release(**changes), PROD, list(votes), person, version, MEMBERS, NOW)


def test_approvers_are_users_and_group_members() -> None:
    assert listed("U0ALICE", PROD.approvers, MEMBERS)
    assert listed("U0BOB", PROD.approvers, MEMBERS)
    assert not listed("U0MALLORY", PROD.approvers, MEMBERS)


@pytest.mark.parametrize(
    ("person", "votes", "changes", "expected"),
    [
        ("U0ALICE", [], {}, None),
        ("U0BOB", [vote("U0ALICE")], {}, None),
        ("U0MALLORY", [], {}, "only <!subteam^S0RELEASEMGRS>, <@U0ALICE> may decide on R-7"),
        ("U0CAROL", [], {}, "you requested R-7; someone else has to approve it"),
        ("U0ALICE", [vote("U0ALICE")], {}, "your decision on R-7 is already recorded"),
        (
            "U0ALICE",
            [],
            {"state": State.APPROVED},
            "R-7 is already approved; there is nothing to decide",
        ),
        ("U0ALICE", [], {"state": State.EXPIRED}, "R-7 is expired; there is nothing to decide"),
        ("U0ALICE", [], {"state": State.CANCELLED}, "R-7 is cancelled; there is nothing to decide"),
        ("U0ALICE", [], {"expires_at": NOW}, "R-7 has expired; ask for a new release"),
    ],
)
def test_vote_refusals(person, votes, changes, expected) -> None:
    assert refusal(person, votes, **changes) == expected


def test_self_approval_when_the_policy_allows_it() -> None:
    relaxed = PROD.model_copy(update={"allow_self_approval": True})
    assert vote_refusal(release(), relaxed, [], "U0CAROL", "v-new", MEMBERS, NOW) is None


def test_a_vote_for_another_version_never_counts() -> None:
    assert "never carry over" in (refusal("U0ALICE", version="v-old") or "")
    assert approvals(release(), [vote("U0ALICE", version="v-old"), vote("U0BOB")]) == [
        vote("U0BOB")
    ]
    assert progress_line(release(), [vote("U0BOB")]) == "1 of 2 approvals: <@U0BOB>"


def test_deployers_default_to_everyone_without_approvals_and_approvers_with() -> None:
    assert deploy_refusal("staging", STAGING, "U0MALLORY", MEMBERS) is None
    assert deploy_refusal("production", PROD, "U0BOB", MEMBERS) is None
    assert "may deploy" in (deploy_refusal("production", PROD, "U0MALLORY", MEMBERS) or "")
    named = PROD.model_copy(update={"deployers": ["U0MALLORY"]})
    assert deploy_refusal("production", named, "U0MALLORY", MEMBERS) is None
    assert deploy_refusal("production", named, "U0ALICE", MEMBERS) is not None


def test_cancel_by_requester_or_approver_before_deployment() -> None:
    assert cancel_refusal(release(), "U0CAROL", PROD, MEMBERS) is None
    assert cancel_refusal(release(), "U0ALICE", PROD, MEMBERS) is None
    assert "only the requester or an approver" in (
        cancel_refusal(release(), "U0MALLORY", PROD, MEMBERS) or ""
    )
    assert "already deploying" in (
        cancel_refusal(release(state=State.DEPLOYING), "U0CAROL", PROD, MEMBERS) or ""
    )


def test_weekend_freeze_ends_at_monday_midnight_in_its_timezone() -> None:
    weekend = Freeze(
        name="weekend",
        environments=["production"],
        days=["sat", "sun"],
        timezone="America/Los_Angeles",
    )
    saturday = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
    window = active_freeze([weekend], [], "production", saturday)
    assert window is not None and window.name == "weekend"
    assert window.ends_at.isoformat() == "2026-11-30T00:00:00-08:00"
    assert active_freeze([weekend], [], "staging", saturday) is None
    assert active_freeze([weekend], [], "production", NOW) is None


def test_one_off_and_manual_freezes() -> None:
    deadline = Freeze(
        name="tax deadline",
        environments=["production"],
        start=datetime(2027, 4, 12, tzinfo=UTC),
        end=datetime(2027, 4, 16, 23, 59, tzinfo=UTC),
    )
    inside = datetime(2027, 4, 14, tzinfo=UTC)
    assert active_freeze([deadline], [], "production", inside).name == "tax deadline"
    manual = FreezeRecord("production", NOW + timedelta(hours=2), "incident", "U0ALICE", NOW)
    window = active_freeze([], [manual], "production", NOW)
    assert window.reason == "incident" and window.ends_at == NOW + timedelta(hours=2)
    assert active_freeze([], [manual], "production", NOW + timedelta(hours=3)) is None
