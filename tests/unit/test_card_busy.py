"""While a release waits for Cloudflare the card says until when it keeps trying, with the
time as a Slack date token; the line goes once the release moves on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from bot.config import parse_config
from bot.engine.model import Release
from bot.engine.notices import EdgeBusy
from bot.engine.states import State
from bot.slack.notifier import SlackNotifier
from bot.slack.render import render
from tests.fakes import FakeReleaseRepository
from tests.unit.test_service_deploy import CONFIG

UNTIL = datetime(2026, 11, 26, 14, 2, tzinfo=UTC)


class Slack:
    """The two Web API methods a card needs, recorded."""

    def __init__(self) -> None:
        self.cards: list[list[dict[str, Any]]] = []

    async def chat_postMessage(self, **kw: Any) -> dict[str, str]:
        self.cards.append(kw["blocks"])
        return {"channel": kw["channel"], "ts": "1700000000.000100"}

    async def chat_update(self, **kw: Any) -> dict[str, str]:
        self.cards.append(kw["blocks"])
        return {"channel": kw["channel"], "ts": kw["ts"]}


def deploying() -> Release:
    return Release(
        service="tax-api",
        environment="production",
        script="tax-api",
        version_id="1a2b3c4d-0000-4000-8000-000000000001",
        requested_by="U0CAROL",
        policy="production",
        state=State.DEPLOYING,
        plan=(10, 50, 100),
        created_at=datetime(2026, 11, 26, 14, tzinfo=UTC),
    )


def busy_lines(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        e["text"]
        for b in blocks
        if b["type"] == "context"
        for e in b["elements"]
        if "Cloudflare busy" in e["text"]
    ]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_the_notice_is_a_card_line_with_a_date_token() -> None:
    (post,) = render(EdgeBusy(deploying(), UNTIL))
    assert post.where == "card"
    token = (
        f"<!date^{int(UNTIL.timestamp())}^{{date_short_pretty}} at {{time}}|2026-11-26 14:02 UTC>"
    )
    assert f"Cloudflare busy, retrying until {token}" in post.text


async def test_the_card_shows_the_wait_until_the_release_changes() -> None:
    repo = FakeReleaseRepository()
    stored = await repo.create(deploying(), [])
    slack = Slack()
    notifier = SlackNotifier(slack, parse_config(CONFIG), repo)  # type: ignore[arg-type]

    await notifier.release_changed(stored)
    await settle()
    await notifier.notify(EdgeBusy(stored, UNTIL))
    await settle()
    await notifier.notify(EdgeBusy(stored, None))  # that call is over (a read that recovered)
    await settle()
    await notifier.notify(EdgeBusy(stored, None))  # nothing shown: no edit
    await notifier.notify(EdgeBusy(stored, UNTIL))
    await settle()
    moved_on = stored.copy(revision=stored.revision + 1, state=State.VERIFYING)
    await notifier.release_changed(moved_on)
    await settle()

    assert [len(busy_lines(card)) for card in slack.cards] == [0, 1, 0, 1, 0]
    assert "<!date^" in busy_lines(slack.cards[1])[0]
