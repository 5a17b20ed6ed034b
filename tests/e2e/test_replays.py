"""Replays over HTTP, with properly signed requests: a command or a click whose trigger_id
was already taken on is answered as a duplicate and not run again, on any replica; Slack's
own redeliveries (X-Slack-Retry-Num) are acked quietly; a new trigger runs as always."""

from __future__ import annotations

import time

from bot.dev import slack_payloads
from bot.engine.states import State
from bot.runtime import Runtime
from bot.slack.replays import ACTION_DUPLICATE, COMMAND_DUPLICATE
from bot.web import create_web_app
from tests.fixtures.bot import RELEASES, SIGNING_SECRET, BotHarness
from tests.fixtures.servers import ServerThread

DEPLOY = "deploy tax-api v1.4.2 to staging"


def _finished(bot: BotHarness, release_id: int) -> None:
    bot.wait_for(lambda: (r := bot.release(release_id)) and r.state.is_terminal, what="the end")


def test_a_replayed_command_is_answered_as_a_duplicate_and_runs_once(bot: BotHarness) -> None:
    body = slack_payloads.slash_command(DEPLOY, "U0CAROL", RELEASES)
    headers = slack_payloads.signed_headers(SIGNING_SECRET, body)
    first = bot.post(body, headers)
    assert (first.status_code, first.text) == (200, "")
    for _ in range(3):  # the very same bytes and headers, as captured
        again = bot.post(body, headers)
        assert again.status_code == 200
        assert again.json() == {"text": COMMAND_DUPLICATE}
    _finished(bot, 1)
    bot.idle()
    assert bot.release(1).state is State.SUCCEEDED
    assert bot.release(2) is None
    assert len(bot.cards()) == 1
    assert len(bot.cf.deployment_posts) == 1


def test_the_same_text_typed_again_is_a_new_command(bot: BotHarness) -> None:
    for _ in range(2):
        answer = bot.command("status", user="U0BOB")
        assert (answer.status_code, answer.text) == (200, "")
    bot.wait_for(lambda: len(bot.ephemerals("U0BOB")) == 2, what="two answers")


def test_a_replayed_click_counts_once_and_is_noted_once(bot: BotHarness) -> None:
    bot.cf.set_traffic("tax-api", 2000)
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: bot.card("R-1") and "Approve" in str(bot.card("R-1").blocks))
    click = bot.click_body("Approve", "R-1", "U0ALICE")
    headers = slack_payloads.signed_headers(SIGNING_SECRET, click)
    assert [bot.post(click, headers).status_code for _ in range(5)] == [200] * 5
    bot.wait_for(lambda: any(ACTION_DUPLICATE in m.text for m in bot.ephemerals("U0ALICE")))
    bot.idle()
    time.sleep(0.5)  # room for a second note, were one coming
    bot.idle()
    notes = [m for m in bot.ephemerals("U0ALICE") if m.text == ACTION_DUPLICATE]
    assert len(notes) == 1
    votes = bot.server.call(bot.rt.votes.votes(1))
    assert [v.user_id for v in votes] == ["U0ALICE"]
    assert bot.release(1).state is State.AWAITING_APPROVAL
    # Bob's click on the same card is his own trigger: it counts.
    assert bot.click("Approve", "R-1", "U0BOB").status_code == 200
    bot.wait_for(lambda: bot.release(1).state is not State.AWAITING_APPROVAL, what="approved")


def test_slacks_redelivery_of_a_handled_command_is_acked_quietly(bot: BotHarness) -> None:
    body = slack_payloads.slash_command(DEPLOY, "U0CAROL", RELEASES)
    assert bot.post(body).status_code == 200
    for retry in (1, 2, 3):
        headers = slack_payloads.signed_headers(SIGNING_SECRET, body)
        headers |= {"x-slack-retry-num": str(retry), "x-slack-retry-reason": "http_timeout"}
        again = bot.post(body, headers)
        assert (again.status_code, again.text) == (200, "")
    _finished(bot, 1)
    bot.idle()
    assert bot.release(2) is None
    assert not [m for m in bot.ephemerals("U0CAROL") if "already" in m.text]


def test_a_replay_to_another_replica_is_recognised(bot: BotHarness) -> None:
    other = Runtime(bot.rt.settings, bot.rt.config)
    with ServerThread(create_web_app(other)) as replica:
        body = slack_payloads.slash_command(DEPLOY, "U0CAROL", RELEASES)
        headers = slack_payloads.signed_headers(SIGNING_SECRET, body)
        assert bot.post(body, headers).text == ""
        elsewhere = bot.http.post(f"{replica.url}/slack/events", content=body, headers=headers)
        assert elsewhere.json() == {"text": COMMAND_DUPLICATE}
        _finished(bot, 1)
        replica.call(other.tasks.idle(20))
        bot.idle()
    assert bot.release(2) is None
    assert len(bot.cf.deployment_posts) == 1
