"""A deployment made outside the bot (here: straight against the Cloudflare simulator, as
wrangler or the dashboard would) is found, announced in the release channel exactly once and
audited; the next release there starts from what is really live."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.engine.drift import DRIFT_ACTION
from bot.engine.drift_watch import DriftWatch
from bot.engine.states import State
from storage.audit import verify_chain
from storage.audit_queries import recent_audit
from tests.fixtures.bot import RELEASES, BotHarness
from tests.fixtures.db import SQLITE_ONLY


def _watch(bot: BotHarness) -> DriftWatch:
    return bot.rt.drift


def _announcements(bot: BotHarness) -> list[str]:
    return [m.text for m in bot.slack.channel_messages(RELEASES) if "outside the bot" in m.text]


def _drift_records(bot: BotHarness) -> list[dict[str, Any]]:
    records = bot.server.call(recent_audit(bot.rt.db, None, None, 500))
    return [r for r in records if r["action"] == DRIFT_ACTION]


def _deploy(bot: BotHarness, release_id: int) -> Any:
    bot.command("deploy tax-api v1.4.2 to staging")
    return bot.wait_for(
        lambda: (r := bot.release(release_id)) and r.state.is_terminal and r,
        what=f"R-{release_id}",
    )


@SQLITE_ONLY
def test_a_deployment_made_by_hand_is_announced_once(bot: BotHarness) -> None:
    assert _deploy(bot, 1).state is State.SUCCEEDED
    watch = _watch(bot)
    assert bot.server.call(watch.run()) == []  # everything is as the bot left it

    old = bot.cf.version_id("tax-api-staging", "v1.4.0")
    by_hand = bot.cf.deploy_direct(
        "tax-api-staging",
        old,
        author_email="mallory@example.com",
        source="dash",
        message="hotfix from the dashboard",
    )
    found = bot.server.call(watch.run())
    assert [(d.service, d.environment, d.deployment.id) for d in found] == [
        ("tax-api", "staging", by_hand)
    ]

    # Found again by the next runs, and by another replica at the same moment: still once.
    async def two_replicas() -> list[Any]:
        return await asyncio.gather(watch.run(), _watch(bot).run(), _watch(bot).run())

    assert bot.server.call(two_replicas()) == [[], [], []]
    assert bot.server.call(watch.run()) == []
    bot.idle()

    [text] = _announcements(bot)
    for part in (
        "tax-api/staging was changed outside the bot",
        f"`{by_hand[:8]}` by mallory@example.com via dash",
        "“hotfix from the dashboard”",
        f"`{old[:8]}` (v1.4.0) 100%",
        "(v1.4.2) 100% there (R-1)",
    ):
        assert part in text, text
    [record] = _drift_records(bot)
    assert record["actor"] == "releasebot"
    assert (record["service"], record["environment"]) == ("tax-api", "staging")
    assert record["detail"]["deployment_id"] == by_hand
    assert record["detail"]["author_email"] == "mallory@example.com"
    assert record["detail"]["source"] == "dash"
    assert record["detail"]["split"] == {old: 100}
    assert record["detail"]["created_on"]
    assert bot.server.call(verify_chain(bot.rt.db)).ok

    # The next release starts from what is live, and leaves nothing to announce.
    second = _deploy(bot, 2)
    assert second.state is State.SUCCEEDED and second.stable_version_id == old
    assert bot.server.call(watch.run()) == []
    assert len(_announcements(bot)) == 1


def test_a_split_left_by_hand_is_a_drift_too(bot: BotHarness) -> None:
    assert _deploy(bot, 1).state is State.SUCCEEDED
    new = bot.cf.version_id("tax-api-staging", "v1.4.2")
    old = bot.cf.version_id("tax-api-staging", "v1.4.1")
    bot.cf.deploy_direct("tax-api-staging", [(new, 70), (old, 30)], author_email="ci@example.com")
    [drift] = bot.server.call(_watch(bot).run())
    assert drift.detail()["split"] == {new: 70, old: 30}
    # Putting back exactly what the bot left is no drift to announce.
    bot.cf.deploy_direct("tax-api-staging", new, author_email="ci@example.com")
    assert bot.server.call(_watch(bot).run()) == []
    bot.idle()
    [text] = _announcements(bot)
    assert "by ci@example.com via wrangler" in text and "70% + " in text
