"""The spine, end to end over HTTP: a signed `/release deploy` to staging reaches Cloudflare,
the card is posted then updated, the audit trail and the database hold the story."""

from __future__ import annotations

from bot.engine.states import State
from tests.fixtures.bot import AUDIT, RELEASES, BotHarness


def test_staging_deploy_end_to_end(bot: BotHarness) -> None:
    new = bot.cf.version_id("tax-api-staging", "v1.4.2")

    response = bot.command('deploy tax-api v1.4.2 to staging --reason "fix 1099 rounding"')

    assert response.status_code == 200
    card = bot.wait_for(
        lambda: (c := bot.card("R-1")) and "Succeeded" in str(c.blocks) and c, what="success"
    )
    bot.idle()
    # Cloudflare: exactly one deployment, the new version alone at 100%.
    posts = bot.cf.deployment_posts
    assert len(posts) == 1 and posts[0]["script"] == "tax-api-staging"
    assert posts[0]["body"]["versions"] == [{"version_id": new, "percentage": 100}]
    assert posts[0]["body"]["strategy"] == "percentage"
    # Slack: one card, posted once to the release channel and then edited in place.
    assert [m.ts for m in bot.cards()] == [card.ts]
    posted = [
        a
        for a in bot.slack.calls_to("chat.postMessage")
        if a["channel"] == RELEASES and not a.get("thread_ts")  # thread replies are not cards
    ]
    assert len(posted) == 1
    updates = bot.slack.calls_to("chat.update")
    assert updates and all(u["ts"] == card.ts for u in updates)
    assert "fix 1099 rounding" in str(card.blocks)

    # The audit channel heard about every step.
    def audit_text() -> str:
        return "\n".join(m.text for m in bot.slack.channel_messages(AUDIT))

    for action in ("release.requested", "release.started", "release.succeeded"):
        bot.wait_for(lambda a=action: a in audit_text(), what=f"{action} in the audit channel")
    # The database holds the release, its step and its audit trail.
    release = bot.release(1)
    assert release.state is State.SUCCEEDED
    assert release.version_id == new and release.version_tag == "v1.4.2"
    assert release.message_ts == card.ts and release.channel == RELEASES
    assert [s.percent for s in release.steps] == [100]
    assert release.steps[0].deployment_id
    actions = [e.action for e in bot.audit(1)]
    assert actions == [
        "release.requested",
        "release.auto_approved",
        "release.started",
        "release.step_deployed",
        "gate.passed",
        "release.succeeded",
    ]


def test_status_shows_the_live_split(bot: BotHarness) -> None:
    bot.command("deploy tax-api v1.4.2 to staging")
    bot.wait_for(lambda: bot.release(1) and bot.release(1).state is State.SUCCEEDED, what="deploy")
    new = bot.cf.version_id("tax-api-staging", "v1.4.2")

    assert bot.command("status tax-api staging", user="U0MALLORY").status_code == 200

    answer = bot.wait_for(lambda: bot.ephemerals("U0MALLORY"), what="status answer")[-1]
    assert new[:8] in answer.text and "100%" in answer.text


def test_status_overview_lists_every_service_and_environment(bot: BotHarness) -> None:
    bot.command("status", user="U0BOB")
    answer = bot.wait_for(lambda: bot.ephemerals("U0BOB"), what="status answer")[-1]
    for target in (
        "tax-api/staging",
        "tax-api/production",
        "tax-web/staging",
        "tax-web/production",
    ):
        assert target in answer.text
    assert "100%" in answer.text


def test_mistyped_command_gets_usage_in_the_ack(bot: BotHarness) -> None:
    response = bot.command("deploy tax-api")
    assert response.status_code == 200
    assert "/release deploy" in response.text
    bot.idle()
    assert bot.cards() == []


def test_help_answers_in_the_ack(bot: BotHarness) -> None:
    response = bot.command("help deploy")
    assert response.status_code == 200 and "/release deploy" in response.text


def test_unknown_version_is_explained_privately(bot: BotHarness) -> None:
    bot.command("deploy tax-api v9.9.9 to staging")
    answer = bot.wait_for(lambda: bot.ephemerals("U0CAROL"), what="error answer")[-1]
    assert "v9.9.9" in answer.text
    assert bot.cf.deployment_posts == []
    assert bot.cards() == []


def test_bad_signature_is_refused_and_changes_nothing(bot: BotHarness) -> None:
    from bot.dev import slack_payloads

    body = slack_payloads.slash_command("deploy tax-api v1.4.2 to staging", "U0CAROL", RELEASES)
    forged = slack_payloads.signed_headers("not-the-secret", body)
    stale = slack_payloads.signed_headers("sign-5ecret-4d1f9e2b7c", body, timestamp=1_700_000_000)
    missing = {"content-type": "application/x-www-form-urlencoded"}

    for headers in (forged, stale, missing):
        assert bot.post(body, headers).status_code == 401
    bot.idle()
    assert bot.cf.deployment_posts == []
    assert bot.slack.calls_to("chat.postMessage") == []
    assert bot.release(1) is None
