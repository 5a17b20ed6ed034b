"""Every message and view the app builds stays inside Slack's limits, even with large data:
100 services, 500 releases, long reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import Rollout
from bot.engine.model import (
    Deployment,
    LockRecord,
    Release,
    Step,
    VersionMetrics,
    VersionShare,
    Vote,
    WorkerVersion,
)
from bot.engine.reading import Health, LiveSplit, TargetStatus
from bot.engine.requests import Plan
from bot.engine.states import State
from bot.slack.blocks import answers, views
from bot.slack.blocks.card import release_card
from bot.slack.blocks.home import home_view
from bot.slack.blocks.modals import reject_modal

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
LONG = "x" * 5000


def check_blocks(blocks: list[dict[str, Any]], limit: int = 50) -> None:
    assert 0 < len(blocks) <= limit, len(blocks)
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids)), "block ids must be unique"
    for block in blocks:
        kind = block["type"]
        assert len(block.get("block_id", "")) <= 255
        if kind == "header":
            assert len(block["text"]["text"]) <= 150
        if kind == "section":
            if "text" in block:
                assert 1 <= len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            for f in block.get("fields", []):
                assert len(f["text"]) <= 2000
        if kind == "context":
            assert len(block["elements"]) <= 10
        if kind == "actions":
            assert len(block["elements"]) <= 25
            for e in block["elements"]:
                assert len(e["text"]["text"]) <= 75
                assert len(e.get("value", "")) <= 2000
                assert len(e["action_id"]) <= 255


def release(i: int, state: State = State.SUCCEEDED) -> Release:
    return Release(
        service=f"service-{i % 100}",
        environment="production",
        script=f"svc-{i}",
        version_id=f"{i:08x}-0000-4000-8000-000000000000",
        requested_by="U0CAROL",
        policy="production",
        state=state,
        version_tag=f"v{i}.0.0-{'long' * 30}",
        version_message=LONG,
        reason=LONG,
        outcome=LONG,
        plan=(1, 2, 5, 10, 25, 50, 75, 100),
        current_step=3,
        approvals_required=20,
        id=i,
        created_at=NOW,
        finished_at=NOW + timedelta(minutes=12),
        steps=[Step(0, 1, gate={"summary": LONG})],
    )


def status(i: int) -> TargetStatus:
    dep = Deployment(
        f"dep-{i}",
        (VersionShare("a" * 36, 90), VersionShare("b" * 36, 10)),
        created_on=NOW,
        author_email="someone@example.com",
        message=LONG,
    )
    live = LiveSplit(
        f"service-{i}",
        "production",
        f"svc-{i}",
        dep,
        {"a" * 36: WorkerVersion("a" * 36, tag="v" * 200)},
    )
    return TargetStatus(
        f"service-{i}",
        "production",
        live,
        inflight=release(i, State.VERIFYING),
        waiting=[release(i + 1, State.APPROVED)],
        pending=release(i + 2, State.AWAITING_APPROVAL),
        lock=LockRecord(f"service-{i}", "production", LONG, "U0ALICE", NOW),
        votes=[Vote(i, "v", f"U{n:08d}", True, NOW) for n in range(30)],
    )


def test_cards_in_every_state() -> None:
    votes = [Vote(1, "v", f"U{n:08d}", True, NOW) for n in range(40)]
    for state in State:
        text, blocks = release_card(release(1, state).copy(emergency=True), votes)
        check_blocks(blocks)
        assert len(text) <= 3000


def test_status_history_versions_health_with_large_data() -> None:
    statuses = [status(i) for i in range(100)]
    check_blocks(views.status_overview(statuses)[1])
    check_blocks(views.status_detail(statuses[0])[1])
    rows = [
        (release(i), [Vote(i, "v", f"U{n:08d}", True, NOW) for n in range(20)]) for i in range(500)
    ]
    check_blocks(views.history_view("service-1", "production", rows, True, "/release", 100)[1])
    versions = [
        WorkerVersion(f"{i:036d}", tag=LONG, message=LONG, author_email=LONG, created_on=NOW)
        for i in range(500)
    ]
    check_blocks(views.versions_view("s", "production", versions, None, NOW)[1])
    live = statuses[0].live
    assert live is not None
    health = Health(
        live,
        timedelta(hours=1),
        {"a" * 36: VersionMetrics("a" * 36, 10**9, 10**6, 1500.0, 99000.0)},
        LONG,
        (False, 500, LONG),
    )
    check_blocks(views.health_view(health)[1])


def test_plan_error_modal_and_home() -> None:
    plan = Plan(
        release(1, State.REQUESTED),
        approvers=[f"U{n:08d}" for n in range(200)],
        deployers=None,
        may_deploy=LONG,
        lock=None,
        freeze=None,
        holder=release(2),
        queue_ahead=[release(i) for i in range(50)],
        progression=LONG,
        rollout=Rollout(),
    )
    check_blocks(answers.plan(plan, "/release")[1])
    check_blocks(answers.error(LONG)[1])
    modal = reject_modal("R-123456789", "1:" + "v" * 36)
    assert len(modal["title"]["text"]) <= 24 and len(modal["private_metadata"]) <= 3000
    check_blocks(modal["blocks"], 100)
    home = home_view(
        [status(i) for i in range(100)],
        [release(i, State.VERIFYING) for i in range(50)],
        [release(i, State.AWAITING_APPROVAL) for i in range(50)],
    )
    check_blocks(home["blocks"], 100)
