"""Slack failing during a production rollout: rate limits (429 with ``Retry-After``) and
server errors (5xx) from ``chat.postMessage`` and ``chat.update``.

The rollout never waits on Slack to be right: it goes on and ends as it would have, the card
catches up with the release, and the audit trail in the database is whole and verifies.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from bot.engine.model import Release
from bot.engine.states import State
from storage.audit import verify_chain
from tests.fixtures.bot import AUDIT, RELEASES, BotHarness


def _request_and_approve(bot: BotHarness) -> None:
    bot.cf.set_traffic("tax-api", 2000)
    assert bot.command("deploy tax-api v1.4.2 to production").status_code == 200
    bot.wait_for(lambda: (c := bot.card("R-1")) and "Approve" in str(c.blocks), what="the card")
    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-1").blocks), what="the first approval")
    bot.click("Approve", "R-1", user="U0BOB")


def _baking(bot: BotHarness, step: int) -> Release:
    def check() -> Release | None:
        r = bot.release(1)
        return r if r.state is State.VERIFYING and r.current_step == step else None

    return bot.wait_for(check, timeout=30, what=f"step {step} baking")


def _ended(bot: BotHarness) -> Release:
    return bot.wait_for(
        lambda: (r := bot.release(1)) and r.state.is_terminal and r, timeout=45, what="the end"
    )


def _splits(bot: BotHarness) -> list[list[dict[str, Any]]]:
    return [p["body"]["versions"] for p in bot.cf.deployment_posts if p["script"] == "tax-api"]


def _audit_channel(bot: BotHarness) -> str:
    return "\n".join(m.text for m in bot.slack.channel_messages(AUDIT))


def _unposted(bot: BotHarness) -> list[str]:
    """R-1's audit records (from the database) the audit channel has not shown, in order."""
    posted = _audit_channel(bot)
    missing = []
    seen: dict[str, int] = {}
    for entry in bot.audit(1):
        seen[entry.action] = seen.get(entry.action, 0) + 1
        if posted.count(f"· {entry.action}") < seen[entry.action]:
            missing.append(entry.action)
    return missing


def _owed(bot: BotHarness) -> int:
    """Slack messages the database still holds to send (the ``slack_outbox`` table), if the
    bot keeps any."""

    async def count() -> int:
        async with bot.rt.db.connect() as conn:
            query = sa.text("SELECT count(*) FROM slack_outbox WHERE sent_at IS NULL")
            return int((await conn.execute(query)).scalar_one())

    try:
        return int(bot.server.call(count()))
    except Exception:
        return 0


def _assert_the_rollout_is_whole(bot: BotHarness, final: Release) -> None:
    assert final.state is State.SUCCEEDED, final.outcome
    new = bot.cf.version_id("tax-api", "v1.4.2")
    stable = bot.cf.version_id("tax-api", "v1.4.1")
    assert _splits(bot) == [
        [{"version_id": new, "percentage": 10}, {"version_id": stable, "percentage": 90}],
        [{"version_id": new, "percentage": 50}, {"version_id": stable, "percentage": 50}],
        [{"version_id": new, "percentage": 100}],
    ], "each step deployed once, in order"
    # The card catches up, and there is still only one.
    bot.wait_for(lambda: "Succeeded" in str(bot.card("R-1").blocks), what="the card: Succeeded")
    cards = [m for m in bot.cards() if m.text.startswith("R-1 ")]
    assert len(cards) == 1
    # The audit trail in the database has the whole story, and the chain holds.
    bot.idle()
    actions = [e.action for e in bot.audit(1)]
    assert actions[0] == "release.requested" and actions[-1] == "release.succeeded"
    assert actions.count("release.step_deployed") == 3
    assert actions.count("release.approved") == 1 and "release.started" in actions
    report = bot.server.call(verify_chain(bot.rt.db))
    assert report.ok, str(report)


def test_rate_limits_and_server_errors_during_a_rollout_cost_time_not_messages(
    bot: BotHarness,
) -> None:
    _request_and_approve(bot)
    _baking(bot, 0)
    # 10%: the next card edit is rate limited (Retry-After: 1), the next post (an audit
    # record, the gate's line in the thread or a DM) meets a 500.
    bot.slack.inject("chat.update", 429, count=1, retry_after=1)
    bot.slack.inject("chat.postMessage", 500, count=1)
    _baking(bot, 1)
    # 50%: the card meets a 502 (a gateway's), the audit channel a 429.
    bot.slack.inject("chat.update", 502, count=1)
    bot.slack.inject("chat.postMessage", 429, count=1, retry_after=1, channel=AUDIT)

    final = _ended(bot)

    assert all(f.count == 0 for f in bot.slack.faults), "every fault met a call"
    _assert_the_rollout_is_whole(bot, final)
    # Every failure was within the retries: nothing is missing in Slack either.
    assert _unposted(bot) == []
    thread = [m.text for m in bot.slack.channel_messages(RELEASES) if m.thread_ts]
    assert sum("— pass" in t for t in thread) == 3, "the thread has each gate's line"


class TestSlackDownLongerThanTheRetries:
    """Slack refuses the card edits and the audit posts past every retry for a while. Not a
    storage matter, so on SQLite only."""

    @pytest.fixture
    def empty_db_url(self, sqlite_url: str) -> str:
        return sqlite_url

    def test_the_rollout_goes_on_and_the_card_catches_up(self, bot: BotHarness) -> None:
        _request_and_approve(bot)
        _baking(bot, 0)
        # One card edit and one audit post fail past their retries (three attempts each).
        bot.slack.inject("chat.update", 500, count=3)
        bot.slack.inject("chat.postMessage", 500, count=3, channel=AUDIT)

        final = _ended(bot)

        # Delivery runs beside the release and retries with backoff: the faults meet calls
        # within a few seconds of the end.
        bot.wait_for(
            lambda: all(f.count == 0 for f in bot.slack.faults),
            timeout=30,
            what="every fault to meet a call",
        )
        _assert_the_rollout_is_whole(bot, final)
        # Kept in the outbox with the change, and sent again until Slack takes them.
        bot.wait_for(lambda: not _owed(bot), timeout=45, what="the outbox to drain")
        assert _unposted(bot) == []
