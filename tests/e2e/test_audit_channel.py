"""The audit channel during a real release, with the notifier handing its records to the
durable poster: every record links to the release card, and none is left owed."""

from __future__ import annotations

from bot.engine.states import State
from storage.outbox import SqlOutbox
from tests.fixtures.bot import AUDIT, RELEASES, BotHarness


def test_every_record_of_a_release_links_to_its_card(bot: BotHarness) -> None:
    rt = bot.rt
    outbox = SqlOutbox(rt.db)
    poster = rt.audit_poster
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
    actions = [line.split(" · ")[2].split(" ")[0] for line in lines]
    assert actions == (
        [
            "release.requested",
            "release.auto_approved",
            "release.started",
            "release.step_deployed",
            "gate.passed",
            "release.succeeded",
        ]
    ), "posted in audit order"
    seqs = [int(line.split(" · ")[0].removeprefix("#")) for line in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for line in lines:
        assert " · `R-1` tax-api/staging · " in line and line.endswith(link), line
    assert len(bot.slack.calls_to("chat.getPermalink")) == 1
