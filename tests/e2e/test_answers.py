"""Answers in chat over HTTP: history, versions, health, DMs, App Home, the digest."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.engine.states import State
from bot.slack.render import render
from tests.fixtures.bot import BotHarness


def _staging_release(bot: BotHarness, tag: str, user: str = "U0CAROL") -> None:
    before = len(bot.cf.deployment_posts)
    bot.command(f"deploy tax-api {tag} to staging", user=user)
    bot.wait_for(lambda: len(bot.cf.deployment_posts) > before, what=f"{tag} deployed")
    bot.idle()


def test_history_lists_releases_newest_first_with_outcome_and_people(bot: BotHarness) -> None:
    _staging_release(bot, "v1.4.2")
    _staging_release(bot, "v1.4.0", user="U0BOB")
    bot.command("history tax-api staging --limit 1", user="U0MALLORY")
    answer = bot.wait_for(lambda: bot.ephemerals("U0MALLORY"), what="history")[-1]
    assert "R-2" in answer.text and "R-1" not in answer.text
    assert "succeeded" in answer.text and "by <@U0BOB>" in answer.text
    assert "--limit 2" in str(answer.blocks)  # says how to see more


def test_versions_mark_the_live_one(bot: BotHarness) -> None:
    bot.command("versions tax-api production", user="U0MALLORY")
    answer = bot.wait_for(lambda: bot.ephemerals("U0MALLORY"), what="versions")[-1]
    live = bot.cf.version_id("tax-api", "v1.4.1")
    lines = answer.text.splitlines()
    assert any(live[:8] in line and "live 100%" in line for line in lines)
    assert any("v1.4.2" in line and "live" not in line for line in lines)
    assert "ago" in answer.text


def test_health_shows_the_live_versions_numbers(bot: BotHarness) -> None:
    bot.cf.set_traffic("tax-api", 50)
    bot.command("health tax-api production", user="U0MALLORY")
    answer = bot.wait_for(lambda: bot.ephemerals("U0MALLORY"), what="health")[-1]
    assert "requests" in answer.text and "errors" in answer.text
    assert "last hour" in answer.text
    live = bot.cf.version_id("tax-api", "v1.4.1")
    assert f"`{live[:8]}` (v1.4.1):" in answer.text  # each version's numbers under its tag


def test_requester_gets_direct_messages(bot: BotHarness) -> None:
    _staging_release(bot, "v1.4.2")
    bot.wait_for(
        lambda: any("succeeded" in m.text for m in bot.slack.channel_messages("U0CAROL")),
        what="a DM on success",
    )
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(
        lambda: any("needs 2 approvals" in m.text for m in bot.slack.channel_messages("U0CAROL")),
        what="a DM asking for approvals",
    )


def test_app_home_shows_what_waits_for_the_viewer(bot: BotHarness) -> None:
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: bot.release(1), what="release")
    event = {
        "token": "x",
        "team_id": "T0BATTLEBORN",
        "api_app_id": "A0RELEASEBOT",
        "type": "event_callback",
        "event_id": "Ev01",
        "event_time": 1,
        "event": {
            "type": "app_home_opened",
            "user": "U0ALICE",
            "channel": "D0ALICE",
            "tab": "home",
            "event_ts": "1.0",
        },
    }
    body = json.dumps(event)
    from bot.dev import slack_payloads
    from tests.fixtures.bot import SIGNING_SECRET

    headers = slack_payloads.signed_headers(SIGNING_SECRET, body)
    headers["content-type"] = "application/json"
    assert bot.post(body, headers).status_code == 200
    home = bot.wait_for(lambda: bot.slack.home.get("U0ALICE"), what="home published")
    text = json.dumps(home)
    assert "Waiting for your approval" in text and "R-1" in text and "Approve" in text
    assert "tax-api/production" in text


def test_the_digest_posts_per_environment(bot: BotHarness) -> None:
    _staging_release(bot, "v1.4.2")
    now = bot.rt.clock.now()
    digest = bot.server.call(bot.rt.service.digests.digest("staging", now - timedelta(days=1), now))
    (post,) = render(digest)
    text = post.text
    assert "tax-api/staging" in text and "tax-web/staging" in text
    assert "1 deploys" in text and "requests" in text
    assert bot.release(1).state is State.SUCCEEDED


def test_stats_from_stored_releases(bot: BotHarness) -> None:
    _staging_release(bot, "v1.4.2")
    bot.cf.inject("POST", r"/deployments$", 400, count=10)
    bot.command("deploy tax-api v1.4.0 to staging")
    bot.wait_for(lambda: (r := bot.release(2)) and r.state.is_terminal, what="a failed deploy")
    bot.command("stats tax-api --days 7", user="U0MALLORY")
    answer = bot.wait_for(lambda: bot.ephemerals("U0MALLORY"), what="stats")[-1]
    assert "Deployment frequency" in answer.text
    assert "1 successful deploy" in answer.text
    assert "50" in answer.text  # change failure rate: 1 of 2 deploys
