"""Hostile or broken requests to /slack/events get the right status and change nothing."""

from __future__ import annotations

from urllib.parse import quote

from bot.dev import slack_payloads
from bot.engine.states import State
from tests.fixtures.bot import RELEASES, SIGNING_SECRET, BotHarness

DEPLOY = slack_payloads.slash_command("deploy tax-api v1.4.2 to staging", "U0CAROL", RELEASES)


def _nothing_happened(bot: BotHarness) -> None:
    bot.idle()
    assert bot.cf.deployment_posts == []
    assert bot.cards() == []
    assert bot.release(1) is None


def test_forged_missing_and_replayed_signatures_get_401(bot: BotHarness) -> None:
    signed = slack_payloads.signed_headers(SIGNING_SECRET, DEPLOY)
    forged = dict(signed, **{"x-slack-signature": "v0=" + "0" * 64})
    no_signature = {k: v for k, v in signed.items() if k != "x-slack-signature"}
    no_timestamp = {k: v for k, v in signed.items() if k != "x-slack-request-timestamp"}
    replayed = slack_payloads.signed_headers(SIGNING_SECRET, DEPLOY, timestamp=1_700_000_000)
    for headers in (forged, no_signature, no_timestamp, replayed):
        assert bot.post(DEPLOY, headers).status_code == 401
    tampered = DEPLOY.replace("staging", "production")
    assert bot.post(tampered, signed).status_code == 401
    _nothing_happened(bot)


def test_a_megabyte_body_is_refused_unread(bot: BotHarness) -> None:
    body = DEPLOY + "&padding=" + "a" * 1_000_001
    response = bot.post(body, slack_payloads.signed_headers(SIGNING_SECRET, body))
    assert response.status_code == 413
    _nothing_happened(bot)


def test_malformed_payload_json_gets_400(bot: BotHarness) -> None:
    body = "payload=" + quote('{"type": "block_actions", "actions": [')
    response = bot.post(body, slack_payloads.signed_headers(SIGNING_SECRET, body))
    assert response.status_code == 400
    _nothing_happened(bot)


def test_unknown_action_gets_200_and_a_private_note(bot: BotHarness) -> None:
    body = slack_payloads.block_action("release_launch_rockets", "1:abc", "U0BOB", RELEASES, "1.1")
    assert bot.post(body).status_code == 200
    note = bot.wait_for(lambda: bot.ephemerals("U0BOB"), what="a private note")[-1]
    assert "not one this bot knows" in note.text
    _nothing_happened(bot)


def test_a_button_for_a_release_that_does_not_exist(bot: BotHarness) -> None:
    body = slack_payloads.block_action(
        "release_approve", "999:abcdef12", "U0ALICE", RELEASES, "1.1"
    )
    assert bot.post(body).status_code == 200
    note = bot.wait_for(lambda: bot.ephemerals("U0ALICE"), what="a private note")[-1]
    assert "no release R-999" in note.text
    garbage = slack_payloads.block_action(
        "release_approve", "not-a-value", "U0ALICE", RELEASES, "1"
    )
    assert bot.post(garbage).status_code == 200
    bot.wait_for(lambda: len(bot.ephemerals("U0ALICE")) == 2, what="second note")
    _nothing_happened(bot)


def test_a_command_still_works_after_all_that(bot: BotHarness) -> None:
    bot.post("payload=%7B", slack_payloads.signed_headers(SIGNING_SECRET, "payload=%7B"))
    bot.command("deploy tax-api v1.4.2 to staging")
    assert bot.wait_for(lambda: (r := bot.release(1)) and r.state.is_terminal and r).state is (
        State.SUCCEEDED
    )
