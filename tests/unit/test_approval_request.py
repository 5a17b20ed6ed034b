"""The approval request goes into the card's thread with Approve and Reject, even when the
card is posted while the reply looks for it, and loses its buttons once the release is
decided, saying who decided."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from bot.config import parse_config
from bot.engine.model import Release, Vote
from bot.engine.notices import ApprovalRequested
from bot.engine.states import State
from bot.slack.blocks.approval import decision_line
from bot.slack.notifier import SlackNotifier
from tests.fakes import FakeReleaseRepository
from tests.unit.test_service_deploy import CONFIG

AT = datetime(2026, 11, 26, 14, tzinfo=UTC)


class Slack:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.n = 0

    async def chat_postMessage(self, **kw: Any) -> dict[str, str]:
        self.n += 1
        await asyncio.sleep(0)
        ts = f"1700000000.{self.n:06d}"
        self.posts.append({**kw, "ts": ts})
        return {"channel": kw["channel"], "ts": ts}

    async def chat_update(self, **kw: Any) -> dict[str, str]:
        self.updates.append(kw)
        return {"channel": kw["channel"], "ts": kw["ts"]}


class SlowReads(FakeReleaseRepository):
    """A database read that takes long enough for the card to be posted meanwhile."""

    slow = False

    async def get(self, release_id: int) -> Release | None:
        found = await super().get(release_id)
        if self.slow:
            for _ in range(20):
                await asyncio.sleep(0)
        return found


class Votes:
    def __init__(self) -> None:
        self.given: list[Vote] = []

    async def votes(self, release_id: int) -> list[Vote]:
        return list(self.given)


def awaiting() -> Release:
    return Release(
        service="tax-api",
        environment="production",
        script="tax-api",
        version_id="1a2b3c4d-0000-4000-8000-000000000001",
        requested_by="U0CAROL",
        policy="production",
        state=State.AWAITING_APPROVAL,
        approvals_required=2,
        plan=(10, 50, 100),
        created_at=AT,
    )


async def settle(done: Any) -> None:
    for _ in range(300):
        if done():
            return
        await asyncio.sleep(0.01)


def buttons(message: dict[str, Any]) -> list[str]:
    return [
        e["text"]["text"]
        for b in message.get("blocks") or []
        if b["type"] == "actions"
        for e in b["elements"]
    ]


async def test_the_request_finds_the_card_posted_while_it_read_the_database() -> None:
    repo = SlowReads()
    stored = await repo.create(awaiting(), [])
    slack = Slack()
    votes = Votes()
    notifier = SlackNotifier(slack, parse_config(CONFIG), repo, votes)  # type: ignore[arg-type]
    repo.slow = True

    await notifier.release_changed(stored)
    await notifier.notify(ApprovalRequested(stored, ("U0ALICE",), "/release"))
    await settle(lambda: len(slack.posts) == 2)

    card, ask = slack.posts
    assert card["text"].startswith("R-1 ") and "thread_ts" not in card
    assert ask["thread_ts"] == "1700000000.000001"
    assert ask["text"].startswith("Approval needed: 2 of <@U0ALICE>")
    assert buttons(ask) == ["Approve", "Reject"]

    votes.given = [Vote(1, stored.version_id, u, True, AT) for u in ("U0ALICE", "U0BOB")]
    approved = await repo.get(1)
    assert approved is not None
    approved.state, approved.revision = State.APPROVED, 1
    repo.releases[1] = approved
    await notifier.release_changed(approved)
    await settle(lambda: len(slack.updates) >= 2)
    edited = [u for u in slack.updates if u["ts"] == ask["ts"]]
    assert len(edited) == 1
    assert buttons(edited[0]) == []
    assert "Approved by <@U0ALICE>, <@U0BOB>" in str(edited[0]["blocks"])


def test_who_decided() -> None:
    release = awaiting()
    assert decision_line(release, []) is None
    rejected = release.copy(state=State.CANCELLED, outcome="rejected: no QA", ended_by="U0BOB")
    assert decision_line(rejected, []) == ":no_entry_sign: Rejected by <@U0BOB>"
    cancelled = release.copy(state=State.CANCELLED, outcome="cancelled", ended_by="U0CAROL")
    assert decision_line(cancelled, []) == ":no_entry_sign: Cancelled by <@U0CAROL>"
    one = [Vote(1, release.version_id, "U0ALICE", True, AT)]
    expired = decision_line(release.copy(state=State.EXPIRED), one)
    assert expired == ":alarm_clock: Expired without enough approvals (approved by <@U0ALICE>)"
