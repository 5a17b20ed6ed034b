"""Approvals over HTTP, as Slack sends them: buttons, the reject modal, refusals, expiry,
and the rollout that follows."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

from bot.dev import slack_payloads
from bot.engine.states import State
from tests.fixtures.bot import RELEASES, SIGNING_SECRET, BotHarness, click_payload, config_data
from tests.fixtures.db import SQLITE_ONLY


def _deploy_production(bot: BotHarness, tag: str = "v1.4.2") -> None:
    bot.cf.set_traffic("tax-api", 2000)
    assert bot.command(f"deploy tax-api {tag} to production").status_code == 200
    bot.wait_for(
        lambda: bot.card("R-1") and "Approve" in str(bot.card("R-1").blocks),
        what="the card with buttons",
    )


def _thread(bot: BotHarness, key: str) -> str:
    card = bot.card(key)
    assert card is not None
    return "\n".join(m.text for m in bot.slack.channel_messages(RELEASES) if m.thread_ts == card.ts)


def test_two_approvals_start_a_gradual_rollout_that_walks_to_100(bot: BotHarness) -> None:
    _deploy_production(bot)
    assert bot.release(1).state is State.AWAITING_APPROVAL
    thread = bot.wait_for(lambda: _thread(bot, "R-1"), what="approvers mentioned")
    assert "<!subteam^S0RELEASEMGRS>" in thread and "<@U0ALICE>" in thread

    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(
        lambda: "1 of 2 approvals: <@U0ALICE>" in str(bot.card("R-1").blocks),
        what="progress on the card",
    )
    bot.click("Approve", "R-1", user="U0BOB")

    final = bot.wait_for(
        lambda: (r := bot.release(1)) and r.state.is_terminal and r, timeout=30, what="the end"
    )
    assert final.state is State.SUCCEEDED, final.outcome
    posts = [p["body"]["versions"] for p in bot.cf.deployment_posts]
    new = bot.cf.version_id("tax-api", "v1.4.2")
    stable = bot.cf.version_id("tax-api", "v1.4.1")
    assert posts == [
        [{"version_id": new, "percentage": 10}, {"version_id": stable, "percentage": 90}],
        [{"version_id": new, "percentage": 50}, {"version_id": stable, "percentage": 50}],
        [{"version_id": new, "percentage": 100}],
    ]
    thread = bot.wait_for(lambda: "— pass" in (t := _thread(bot, "R-1")) and t, what="gates")
    assert "approved R-1 (1 of 2)" in thread and "approved R-1 (2 of 2)" in thread
    assert "10%:" in thread and "errors vs" in thread and "— pass" in thread
    bot.wait_for(lambda: "Succeeded" in str(bot.card("R-1").blocks), what="the card's end")


def test_refusals_are_private_and_audited(bot: BotHarness) -> None:
    _deploy_production(bot)
    bot.click("Approve", "R-1", user="U0CAROL")  # her own release
    bot.click("Approve", "R-1", user="U0MALLORY")  # not an approver
    own = bot.wait_for(lambda: bot.ephemerals("U0CAROL"), what="self-approval refusal")
    outsider = bot.wait_for(lambda: bot.ephemerals("U0MALLORY"), what="outsider refusal")
    assert "someone else has to approve" in own[-1].text
    assert "may decide on R-1" in outsider[-1].text
    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-1").blocks), what="one approval")
    bot.click("Approve", "R-1", user="U0ALICE")  # again
    again = bot.wait_for(lambda: bot.ephemerals("U0ALICE"), what="second vote refusal")
    assert "already recorded" in again[-1].text
    bot.idle()
    refused = [e for e in bot.audit(1) if e.action == "refused"]
    assert len(refused) == 3
    assert bot.release(1).state is State.AWAITING_APPROVAL
    assert bot.cf.deployment_posts == []


def test_reject_opens_a_modal_and_ends_the_release(bot: BotHarness) -> None:
    _deploy_production(bot)
    stale_click = bot.click_body("Approve", "R-1", user="U0BOB")
    bot.click("Reject", "R-1", user="U0ALICE")
    view = bot.wait_for(lambda: bot.slack.views, what="the reason modal")[-1]
    assert view["callback_id"] == "release_reject_modal"
    body = slack_payloads.view_submission(
        view["callback_id"],
        view["private_metadata"],
        {"reject_reason": {"reason": {"type": "plain_text_input", "value": "missing QA sign-off"}}},
        "U0ALICE",
    )
    assert bot.post(body).status_code == 200
    final = bot.wait_for(lambda: (r := bot.release(1)).state.is_terminal and r, what="rejected")
    assert final.state is State.CANCELLED
    assert "missing QA sign-off" in final.outcome
    bot.wait_for(lambda: "rejected by <@U0ALICE>" in _thread(bot, "R-1"), what="the reply")
    bot.post(stale_click)  # a click on the card as it was before the rejection
    stale = bot.wait_for(lambda: bot.ephemerals("U0BOB"), what="stale card refusal")
    assert "cancelled" in stale[-1].text
    assert bot.cf.deployment_posts == []


class TestExpiry:
    """Approvals that last one second (only here: the other tests keep the policy's TTL)."""

    @pytest.fixture
    def bot_config(self) -> dict[str, Any]:
        data = config_data()
        data["policies"]["production"]["approval_ttl"] = "1s"
        return data

    def test_an_unapproved_release_expires(self, bot: BotHarness) -> None:
        _deploy_production(bot)
        late_click = bot.click_body("Approve", "R-1", user="U0ALICE")
        final = bot.wait_for(lambda: (r := bot.release(1)).state.is_terminal and r, what="expiry")
        assert final.state is State.EXPIRED
        bot.wait_for(lambda: "Expired" in str(bot.card("R-1").blocks), what="the card says so")
        bot.post(late_click)
        late = bot.wait_for(lambda: bot.ephemerals("U0ALICE"), what="late approval refusal")
        assert "expired" in late[-1].text


def test_the_same_click_delivered_again_counts_once(bot: BotHarness) -> None:
    _deploy_production(bot)
    body = bot.click_body("Approve", "R-1", "U0ALICE")
    for retry in range(3):
        headers = slack_payloads.signed_headers(SIGNING_SECRET, body)
        if retry:
            headers["x-slack-retry-num"] = str(retry)
            headers["x-slack-retry-reason"] = "http_timeout"
        assert bot.post(body, headers).status_code == 200
    bot.idle()
    votes = bot.server.call(bot.rt.votes.votes(1))
    assert [v.user_id for v in votes] == ["U0ALICE"]
    assert bot.release(1).state is State.AWAITING_APPROVAL


def test_fifty_racing_clicks_give_one_vote_each_and_one_rollout(bot: BotHarness) -> None:
    _deploy_production(bot)
    bodies = [bot.click_body("Approve", "R-1", user) for user in ["U0ALICE", "U0BOB"] * 25]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(lambda b: bot.post(b).status_code, bodies))
    assert codes == [200] * 50
    bot.wait_for(lambda: bot.release(1).state is not State.AWAITING_APPROVAL, what="approved")
    bot.idle()
    votes = bot.server.call(bot.rt.votes.votes(1))
    assert sorted(v.user_id for v in votes) == ["U0ALICE", "U0BOB"]
    actions = [e.action for e in bot.audit(1)]
    assert actions.count("release.approved") == 1
    assert actions.count("release.started") == 1


def _approval_request(bot: BotHarness, key: str) -> Any:
    card = bot.card(key)
    assert card is not None
    for m in bot.slack.channel_messages(RELEASES):
        if m.thread_ts == card.ts and m.text.startswith("Approval needed"):
            return m
    return None


@SQLITE_ONLY
def test_the_first_approval_request_after_start_is_in_the_thread_with_buttons(
    bot: BotHarness,
) -> None:
    _deploy_production(bot)  # the first release since the bot started
    ask = bot.wait_for(lambda: _approval_request(bot, "R-1"), what="the request in the thread")
    assert [m for m in bot.slack.channel_messages(RELEASES) if m.thread_ts is None] == bot.cards()
    assert "Approve" in str(ask.blocks) and "Reject" in str(ask.blocks)

    bot.post(click_payload(ask, "Approve", "U0ALICE"))  # a button in the thread counts
    bot.wait_for(lambda: "1 of 2 approvals" in str(bot.card("R-1").blocks), what="the vote")
    bot.command('reject R-1 --reason "not today"', user="U0BOB")
    edited = bot.wait_for(
        lambda: (m := _approval_request(bot, "R-1")) and "Rejected by" in str(m.blocks) and m,
        what="the request edited after the decision",
    )
    assert "Approve" not in str(edited.blocks)
    assert "Rejected by <@U0BOB>" in str(edited.blocks)


def _announcements(bot: BotHarness) -> str:
    return "\n".join(
        m.text for m in bot.slack.channel_messages(RELEASES) if m.thread_ts is None and not m.blocks
    )


def test_approving_a_release_behind_a_lock_says_it_is_approved_and_waits(bot: BotHarness) -> None:
    bot.cf.set_traffic("tax-api", 2000)
    bot.command('lock tax-api production --reason "db <swap>"', user="U0ALICE")
    bot.wait_for(lambda: "locked tax-api/production" in _announcements(bot), what="the lock")
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(
        lambda: bot.release(1) and bot.release(1).state is State.AWAITING_APPROVAL,
        timeout=30,
        what="the request",
    )
    bot.command("approve R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in _thread(bot, "R-1"), what="the first vote")
    bot.command("approve R-1", user="U0BOB")
    reply = bot.wait_for(
        lambda: [m for m in bot.ephemerals("U0BOB") if "You approved R-1" in m.text], what="reply"
    )[-1]
    assert "starts now" not in reply.text
    assert "You approved R-1; it is approved and waits" in reply.text
    assert "locked by <@U0ALICE> (db &lt;swap&gt;)" in reply.text
    bot.wait_for(
        lambda: "Waits: locked by <@U0ALICE>" in str(bot.card("R-1").blocks), what="card line"
    )
    bot.command("unlock tax-api production", user="U0ALICE")
    bot.wait_for(lambda: "R-1 starts now" in _announcements(bot), what="the unlock says R-1 starts")
    bot.wait_for(lambda: bot.release(1).state is not State.APPROVED, what="R-1 started")
