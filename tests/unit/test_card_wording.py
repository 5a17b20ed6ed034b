"""How the card words where a release is and how it ended: finished steps read as done, a
rejection as a rejection, a rollback as a rollback; only an automatic rollback alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.engine import notices as n
from bot.engine.model import Kind, Release, Strategy
from bot.engine.states import State
from bot.slack.blocks.card import progress, release_card
from bot.slack.blocks.views import history_view
from bot.slack.render import render

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
NEW = "1a2b3c4d-0000-4000-8000-000000000000"
OLD = "9f8e7d6c-0000-4000-8000-000000000000"


def release(state: State = State.VERIFYING, **changes: Any) -> Release:
    base = Release(
        service="tax-api",
        environment="production",
        script="tax-api",
        version_id=NEW,
        version_tag="v1.5.0",
        requested_by="U0CAROL",
        policy="production",
        state=state,
        strategy=Strategy.GRADUAL,
        plan=(10, 50, 100),
        current_step=2,
        stable_version_id=OLD,
        approvals_required=2,
        id=7,
        created_at=NOW,
    )
    return base.copy(**changes)


def shown(blocks: list[dict[str, Any]]) -> str:
    return str(blocks)


@pytest.mark.parametrize(
    ("state", "step", "expected"),
    [
        (State.VERIFYING, 2, "✓ 10% → ✓ 50% → ▶ *100%*"),
        (State.DEPLOYING, 0, "▶ *10%* → 50% → 100%"),
        (State.SUCCEEDED, 2, "✓ 10% → ✓ 50% → ✓ 100%"),
        (State.ROLLED_BACK, 1, "✓ 10% → ✗ 50% → 100%"),
        (State.AWAITING_APPROVAL, -1, "10% → 50% → 100%"),
    ],
)
def test_finished_steps_read_as_done_not_struck_through(
    state: State, step: int, expected: str
) -> None:
    line = progress(release(state, current_step=step))
    assert line == expected
    assert "~" not in line


def test_a_rejected_release_says_rejected() -> None:
    rejected = release(State.CANCELLED, current_step=-1, outcome="rejected: breaks rounding")
    text, blocks = release_card(rejected)
    assert "Rejected" in shown(blocks) and "Cancelled" not in shown(blocks)
    assert text.endswith(": Rejected")
    _, rows = history_view("tax-api", "production", [(rejected, [])], False, "/release", 10)
    assert "rejected" in shown(rows) and "cancelled" not in shown(rows)

    cancelled = rejected.copy(outcome="cancelled")
    assert "Cancelled" in shown(release_card(cancelled)[1])


def test_a_rollback_card_says_what_it_rolls_back_and_which_policy_allowed_it() -> None:
    rollback = release(
        State.SUCCEEDED,
        kind=Kind.ROLLBACK,
        strategy=Strategy.IMMEDIATE,
        plan=(100,),
        current_step=0,
        version_id=OLD,
        version_tag="v1.4.0",
        stable_version_id=NEW,
        approvals_required=0,
    )
    text, blocks = release_card(rollback)
    assert blocks[0]["text"]["text"] == "R-7 · Rollback of tax-api production: 1a2b3c4d → v1.4.0"
    policy = blocks[1]["fields"][5]["text"]
    assert "no approval needed" not in policy
    assert policy == (
        "*Policy*\nproduction: lets a deployer roll back at once to a version that ran here before"
    )
    assert text.startswith("R-7 rollback of tax-api production to v1.4.0")


@pytest.mark.parametrize("automatic", [True, False])
def test_only_an_automatic_rollback_alerts(automatic: bool) -> None:
    rolled = release(State.ROLLED_BACK, current_step=1, finished_at=NOW + timedelta(minutes=7))
    posts = render(
        n.RolledBack(rolled, "health gate failed", automatic, ("U0CAROL", "U0ALICE"), "/release")
    )
    channel = next(p.text for p in posts if p.where == "channel")
    assert (":rotating_light:" in channel) is automatic
    assert ("<@U0ALICE>" in channel) is automatic  # people are paged only by an automatic one
    if not automatic:
        assert channel.startswith(":rewind:")
