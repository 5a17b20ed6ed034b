"""The safety rails over HTTP: locks, the queue, freezes with break-glass, the dry run, and
environment progression."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.engine.states import State
from tests.fixtures.bot import RELEASES, BotHarness, config_data


def _announcements(bot: BotHarness) -> str:
    return "\n".join(
        m.text for m in bot.slack.channel_messages(RELEASES) if m.thread_ts is None and not m.blocks
    )


def test_a_lock_queues_deploys_until_it_is_released(bot: BotHarness) -> None:
    bot.command('lock tax-api staging --reason "db migration"', user="U0ALICE")
    bot.wait_for(lambda: "locked tax-api/staging: db migration" in _announcements(bot), what="lock")
    bot.command('lock tax-api staging --reason "db migration, part 2"', user="U0ALICE")
    bot.wait_for(lambda: "updated the lock" in _announcements(bot), what="lock updated")

    bot.command("deploy tax-api v1.4.2 to staging")
    waiting = bot.wait_for(
        lambda: [m for m in bot.ephemerals("U0CAROL") if "waits" in m.text], what="queue note"
    )[-1]
    assert "locked by <@U0ALICE>" in waiting.text and "db migration, part 2" in waiting.text
    assert "number 1 in line" in waiting.text
    assert bot.release(1).state is State.APPROVED
    assert bot.cf.deployment_posts == []

    bot.command("unlock tax-api staging", user="U0ALICE")
    bot.wait_for(lambda: "released the lock on tax-api/staging" in _announcements(bot), what="told")
    final = bot.wait_for(lambda: (r := bot.release(1)).state.is_terminal and r, what="it starts")
    assert final.state is State.SUCCEEDED
    actions = [e.action for e in bot.audit(1)]
    assert actions.index("release.auto_approved") < actions.index("release.started")


def test_a_deploy_while_busy_waits_its_turn(bot: BotHarness) -> None:
    bot.cf.inject("POST", r"/deployments$", None, count=1, delay=1.5)  # a slow first deployment
    bot.command("deploy tax-api v1.4.2 to staging")
    bot.wait_for(
        lambda: bot.release(1) and bot.release(1).state is State.DEPLOYING, what="R-1 busy"
    )
    bot.command("deploy tax-api v1.4.0 to staging", user="U0BOB")
    note = bot.wait_for(
        lambda: [m for m in bot.ephemerals("U0BOB") if "waits" in m.text], what="queue note"
    )[-1]
    assert "busy with R-1" in note.text and "number 1 in line" in note.text
    second = bot.wait_for(
        lambda: (r := bot.release(2)).state.is_terminal and r, timeout=20, what="R-2 runs after R-1"
    )
    assert second.state is State.SUCCEEDED
    assert bot.release(1).state is State.SUCCEEDED
    assert bot.release(1).finished_at <= second.steps[0].intended_at


@pytest.fixture
def bot_config() -> dict[str, Any]:
    data = config_data()
    data["policies"]["production"]["requires_success_in"] = "staging"
    return data


def test_production_takes_only_tags_that_succeeded_in_staging(bot: BotHarness) -> None:
    sent = bot.command("deploy tax-api v1.4.2 to production")
    assert sent.status_code == 200, sent.text
    refused = bot.wait_for(lambda: bot.ephemerals("U0CAROL"), what="refusal")[-1]
    assert "v1.4.2 has not succeeded in tax-api/staging yet" in refused.text
    assert bot.cards() == []

    bot.command("deploy tax-api v1.4.2 to staging")
    bot.wait_for(lambda: bot.release(1) and bot.release(1).state is State.SUCCEEDED, what="staging")
    sent = bot.command("deploy tax-api v1.4.2 to production")
    assert sent.status_code == 200, sent.text

    second = bot.wait_for(lambda: bot.release(2), what="production release")
    assert second.state is State.AWAITING_APPROVAL


def test_a_reused_tag_with_other_script_content_is_refused_for_production(
    bot: BotHarness,
) -> None:
    # v1.4.3 was built twice: staging ran the first build, production holds the second
    bot.cf.upload_version("tax-api-staging", tag="v1.4.3", content="// first build")
    bot.cf.upload_version("tax-api", tag="v1.4.3", content="// rebuilt from another commit")
    bot.command("deploy tax-api v1.4.3 to staging")
    bot.wait_for(lambda: bot.release(1) and bot.release(1).state is State.SUCCEEDED, what="staging")

    bot.command("deploy tax-api v1.4.3 to production")
    refused = bot.wait_for(
        lambda: [m for m in bot.ephemerals("U0CAROL") if "script content" in m.text],
        what="refusal",
    )[-1]
    assert "v1.4.3 succeeded in staging with different script content" in refused.text
    bot.idle()
    assert bot.release(2) is None


def test_a_freeze_refuses_deploys_and_break_glass_needs_a_reason_and_approvals(
    bot: BotHarness,
) -> None:
    bot.command('freeze staging until 2h --reason "quarter close"', user="U0ALICE")
    bot.wait_for(lambda: "froze staging" in _announcements(bot), what="freeze announced")
    # one freeze end, one way: a Slack date token (each reader's own time, UTC fallback)
    token = re.compile(r"<!date\^\d+\^\{date_short_pretty\} at \{time\}\|[-0-9]+ [:0-9]+ UTC>")
    reply = bot.wait_for(lambda: bot.ephemerals("U0ALICE"), what="freeze reply")[-1]
    assert "is frozen until" in reply.text and token.search(reply.text)
    assert token.search(_announcements(bot))
    bot.command("deploy tax-api v1.4.2 to staging")
    refused = bot.wait_for(lambda: bot.ephemerals("U0CAROL"), what="refusal")[-1]
    assert "frozen until" in refused.text and "quarter close" in refused.text
    assert token.search(refused.text) and "<@U0ALICE>" in refused.text
    assert "--emergency" in refused.text

    response = bot.command("deploy tax-api v1.4.2 to staging --emergency")
    assert "reason" in response.text  # the parser asks for one, in the ack

    bot.command('deploy tax-api v1.4.2 to staging --emergency --reason "filing outage"')
    release = bot.wait_for(lambda: bot.release(1), what="emergency release")
    # staging's own policy, with the emergency policy's approvals too (the stricter wins)
    assert release.emergency and release.policy == "staging"
    assert release.approvals_required == 2
    assert release.state is State.AWAITING_APPROVAL
    card = bot.wait_for(lambda: bot.card("R-1"), what="card")
    assert "EMERGENCY" in str(card.blocks)
    requested = bot.audit(1)[0]
    assert requested.detail["freeze_overridden"] == "set by U0ALICE"  # plain data

    bot.command("unfreeze staging", user="U0ALICE")
    bot.wait_for(lambda: "ended the freeze on staging" in _announcements(bot), what="unfrozen")


def test_plan_answers_privately_and_changes_nothing(bot: BotHarness) -> None:
    bot.command("lock tax-api production", user="U0ALICE")
    # the lock is taken after the ack, in the background: plan once it is held
    bot.wait_for(lambda: "locked tax-api/production" in _announcements(bot), what="the lock")
    bot.command("plan tax-api v1.4.2 to production", user="U0MALLORY")
    answer = bot.wait_for(
        lambda: [m for m in bot.ephemerals("U0MALLORY") if "Plan:" in m.text], what="plan"
    )[-1]
    text = answer.text
    assert "v1.4.2" in text and "2 approvals" in text and "<!subteam^S0RELEASEMGRS>" in text
    assert "10% → 50% → 100%" in text and "error rate" in text
    assert "Locked" in text and "may deploy" in text  # mallory may not
    bot.idle()
    assert bot.release(1) is None and bot.cf.deployment_posts == []
    assert bot.cards() == []


def _thread_of(bot: BotHarness, key: str) -> str:
    card = bot.card(key)
    assert card is not None
    return "\n".join(m.text for m in bot.slack.channel_messages(RELEASES) if m.thread_ts == card.ts)


def test_a_release_behind_a_lock_says_it_waits_why_and_when_it_starts(bot: BotHarness) -> None:
    bot.command('lock tax-api staging --reason "db <swap>"', user="U0ALICE")
    bot.wait_for(lambda: "locked tax-api/staging" in _announcements(bot), what="the lock")
    bot.command("deploy tax-api v1.4.2 to staging")
    reply = bot.wait_for(
        lambda: [m for m in bot.ephemerals("U0CAROL") if "waits" in m.text], what="reply"
    )[-1]
    assert "starts now" not in reply.text
    assert "is approved and waits" in reply.text and "locked by <@U0ALICE>" in reply.text
    assert "db &lt;swap&gt;" in reply.text and "number 1 in line" in reply.text
    card = bot.wait_for(
        lambda: (c := bot.card("R-1")) and "Waits: locked by" in str(c.blocks) and c,
        what="the card says why it waits",
    )
    assert "<@U0ALICE> (db &lt;swap&gt;); number 1 in line" in str(card.blocks)
    assert bot.release(1).state is State.APPROVED and bot.cf.deployment_posts == []

    bot.command("unlock tax-api staging", user="U0ALICE")
    told = bot.wait_for(
        lambda: [t for t in _announcements(bot).splitlines() if "released the lock" in t],
        what="the unlock message",
    )[-1]
    assert "R-1 starts now" in told
    bot.wait_for(lambda: bot.release(1).state is not State.APPROVED, what="R-1 started")
    bot.wait_for(
        lambda: "Waits:" not in str(bot.card("R-1").blocks), what="the wait line goes from the card"
    )


def test_the_release_ahead_ending_says_which_queued_release_starts(bot: BotHarness) -> None:
    bot.cf.inject("POST", r"/deployments$", None, count=1, delay=1.5)  # a slow first deployment
    bot.command("deploy tax-api v1.4.2 to staging")
    bot.wait_for(
        lambda: bot.release(1) and bot.release(1).state is State.DEPLOYING, what="R-1 busy"
    )
    bot.command("deploy tax-api v1.4.0 to staging", user="U0BOB")
    bot.wait_for(
        lambda: (c := bot.card("R-2")) and "Waits: behind R-1" in str(c.blocks),
        what="R-2's card says it waits behind R-1",
    )
    thread = bot.wait_for(
        lambda: "R-2 starts now" in (t := _thread_of(bot, "R-2")) and t, timeout=20, what="start"
    )
    assert "R-2 starts now: R-1 has left tax-api/staging" in thread
    assert "is approved and waits" in thread and "busy with R-1" in thread
    bot.wait_for(lambda: bot.release(2).state.is_terminal, timeout=20, what="R-2 done")
