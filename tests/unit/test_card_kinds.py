"""Card parts that depend on what a release is: a D1 restore moves no traffic, so it offers
no rollout controls and no Worker link, and its Reject says what is not restored; two
versions that share a prefix never read the same on the card or in the diff; the diff keeps
its "and N more" when the commits are long."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.engine.diff import VersionDiff, version_diff
from bot.engine.model import Kind, Release, Strategy, VersionRuntime, WorkerVersion
from bot.engine.source import CommitSummary, Comparison
from bot.engine.states import State
from bot.slack.blocks.card import (
    RESTORE_REASON,
    CardLive,
    dashboard_url,
    reject_confirm,
    release_card,
)
from bot.slack.blocks.diff import diff_lines

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
NEW = "259f4329-bbbb-4000-8000-000000000000"
OLD = "259f4329-aaaa-4000-8000-000000000000"
ACCOUNT = "ab" * 16


def release(state: State, **changes: Any) -> Release:
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
        current_step=0,
        stable_version_id=OLD,
        stable_version_tag="v1.4.1",
        approvals_required=2,
        id=7,
        created_at=NOW,
    )
    return base.copy(**changes)


def restore(state: State) -> Release:
    return release(
        state,
        kind=Kind.RESTORE_DB,
        strategy=Strategy.IMMEDIATE,
        plan=(100,),
        reason=f"{RESTORE_REASON}the bookmark taken before R-3",
    )


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_a_restore_offers_no_rollout_controls_and_no_worker_link() -> None:
    _, deploying = release_card(restore(State.DEPLOYING), live=CardLive(account_id=ACCOUNT))
    assert action_ids(deploying) == []
    assert "dash.cloudflare.com" not in str(deploying)
    _, rolling = release_card(release(State.DEPLOYING), live=CardLive(account_id=ACCOUNT))
    assert len(action_ids(rolling)) == 3  # Promote, Pause, Roll back
    assert "dash.cloudflare.com" in str(rolling)


def test_a_restores_reject_says_what_is_not_restored() -> None:
    text = reject_confirm(restore(State.AWAITING_APPROVAL))["text"]["text"]
    assert "D1 database of tax-api production will not be restored" in text
    assert "the bookmark taken before R-3" in text and "deployed" not in text


def test_versions_sharing_a_prefix_read_apart_in_the_roll_back_confirm_and_the_diff() -> None:
    _, blocks = release_card(release(State.VERIFYING))
    confirm = next(
        e["confirm"]["text"]["text"]
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["text"]["text"] == "Roll back"
    )
    assert "`259f4329-a`" in confirm and "`259f4329-b`" in confirm
    diff = VersionDiff(live_id=OLD, candidate_id=NEW)
    assert "live `259f4329-a` → `259f4329-b`" in (diff_lines(diff) or "")


def test_long_commits_keep_the_count_of_the_rest() -> None:
    commits = tuple(
        CommitSummary(f"{i:040x}", "&<>" * 60 + f" change {i}", "d" * 39) for i in range(30)
    )
    rt = VersionRuntime(compatibility_date="2024-09-23")
    diff = version_diff(
        WorkerVersion(id=OLD, tag="v1.4.1", created_on=NOW, runtime=rt),
        WorkerVersion(id=NEW, tag="v1.5.0", created_on=NOW, runtime=rt),
        Comparison("ahead", 30, 0, 30, commits, "https://github.com/x/y/compare"),
    )
    text = diff_lines(diff) or ""
    assert len(text) <= 2900
    shown = text.count("\n• ")
    assert 0 < shown < 20
    assert text.endswith(f"and {30 - shown} more")


def test_the_dashboard_url_quotes_what_config_gave() -> None:
    assert dashboard_url(ACCOUNT, "tax api|x").endswith(
        "/view/tax%20api%7Cx/production/deployments"
    )
