"""The audit channel during a real release, with the notifier handing its records to the
durable poster: every record links to the release card, and none is left owed."""

from __future__ import annotations

from typing import Any

from bot.engine.states import State
from bot.slack.audit_poster import AuditPoster
from storage.outbox import SqlOutbox
from tests.fixtures.bot import AUDIT, RELEASES, BotHarness


def test_every_record_of_a_release_links_to_its_card(bot: BotHarness) -> None:
    rt = bot.rt
    outbox = SqlOutbox(rt.db)
    poster = AuditPoster(
        rt.slack_client, rt.config.slack.audit_channel, outbox, rt.repo, rt.clock, tasks=rt.tasks
    )

    async def audit_recorded(entries: Any) -> None:
        await poster.post(entries)

    rt.notifier.audit_recorded = audit_recorded  # type: ignore[method-assign]
    bot.command("deploy tax-api v1.4.2 to staging")
    bot.wait_for(lambda: bot.release(1) and bot.release(1).state is State.SUCCEEDED, what="R-1")
    bot.idle()
    # Records written before the card was posted wait for it (the scheduler's retry job).
    bot.wait_for(
        lambda: (
            bot.server.call(poster.retry_due()) >= 0 and bot.server.call(outbox.count_unsent()) == 0
        ),
        what="every audit record posted",
    )

    card = bot.card("R-1")
    assert card is not None
    link = f"<https://battleborn.example/archives/{RELEASES}/p{card.ts.replace('.', '')}|card>"
    lines = [line for m in bot.slack.channel_messages(AUDIT) for line in m.text.splitlines()]
    actions = [line.split(" · ")[1].split(" ")[0] for line in lines]
    assert sorted(actions) == sorted(
        [
            "release.requested",
            "release.auto_approved",
            "release.started",
            "release.step_deployed",
            "gate.passed",
            "release.succeeded",
        ]
    )
    for line in lines:
        assert line.startswith("`R-1` tax-api/staging · ") and line.endswith(link), line
    assert len(bot.slack.calls_to("chat.getPermalink")) == 1
