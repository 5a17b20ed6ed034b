"""Cloudflare failing during a rollout, end to end: 429s and 5xx on the deployments endpoint
are retried (honouring Retry-After) without a duplicate deployment, and a step that cannot be
deployed before its retry budget runs out leaves the stable version at 100%, read back, with
the channel told. The budget is 3 s here, so that a test of giving up is quick."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from bot.engine.states import State
from tests.fixtures.bot import RELEASES, BotHarness, config_data

DEPLOYMENTS = r"/workers/scripts/tax-api/deployments$"


@pytest.fixture
def bot_config() -> dict[str, Any]:
    data = config_data()
    data["cloudflare"]["retry"] = {"steps": "3s"}
    return data


def split(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"version_id": v, "percentage": p} for v, p in pairs]


def posts(bot: BotHarness) -> list[list[dict[str, Any]]]:
    return [p["body"]["versions"] for p in bot.cf.deployment_posts if p["script"] == "tax-api"]


def post_answers(bot: BotHarness) -> list[tuple[datetime, int]]:
    """(when, status) of every deployment POST that reached the simulator, faults included."""
    return [
        (datetime.fromisoformat(r["at"]), r["status"])
        for r in bot.cf.requests_log
        if r["method"] == "POST" and r["path"].endswith("/workers/scripts/tax-api/deployments")
    ]


def start_rollout(bot: BotHarness) -> None:
    bot.cf.set_traffic("tax-api", 2000)
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: (c := bot.card("R-1")) and "Approve" in str(c.blocks), what="card")
    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-1").blocks), what="first approval")
    bot.click("Approve", "R-1", user="U0BOB")


def baking(bot: BotHarness, index: int) -> None:
    bot.wait_for(
        lambda: (r := bot.release(1)) and r.state is State.VERIFYING and r.current_step == index,
        what=f"step {index} baking",
    )


def ended(bot: BotHarness) -> Any:
    """The release once it ended, and what it said on the way posted."""
    final = bot.wait_for(
        lambda: (r := bot.release(1)) and r.state.is_terminal and r, timeout=30, what="the end"
    )
    bot.idle()
    return final


def test_429_and_5xx_on_the_deployments_endpoint_are_retried_without_duplicates(
    bot: BotHarness,
) -> None:
    new = bot.cf.version_id("tax-api", "v1.4.2")
    stable = bot.cf.version_id("tax-api", "v1.4.1")
    bot.cf.inject("POST", DEPLOYMENTS, 429, count=1, retry_after=1)
    start_rollout(bot)
    baking(bot, 0)
    answers = post_answers(bot)
    assert [status for _, status in answers] == [429, 200]
    assert (answers[1][0] - answers[0][0]).total_seconds() >= 1.0  # Retry-After honoured

    # the 50% step: one 503 before Cloudflare acted, then a 502 after it had acted
    bot.cf.inject("POST", DEPLOYMENTS, 503, count=1)
    bot.cf.inject("POST", DEPLOYMENTS, 502, count=1, apply_first=True)
    final = ended(bot)

    assert final.state is State.SUCCEEDED, final.outcome
    assert [status for _, status in post_answers(bot)] == [429, 200, 503, 502, 200]
    # one deployment per step: the 502 had created the 50% split, and the bot saw it
    assert posts(bot) == [
        split((new, 10), (stable, 90)),
        split((new, 50), (stable, 50)),
        split((new, 100)),
    ]
    history = bot.cf.script("tax-api").deployments
    made = [d.versions for d in reversed(history)][-3:]
    assert made == [[(new, 10.0), (stable, 90.0)], [(new, 50.0), (stable, 50.0)], [(new, 100.0)]]
    assert [s.percent for s in final.steps] == [10, 50, 100]


def test_a_step_that_cannot_be_deployed_fails_safe_and_the_channel_is_told(
    bot: BotHarness,
) -> None:
    new = bot.cf.version_id("tax-api", "v1.4.2")
    stable = bot.cf.version_id("tax-api", "v1.4.1")
    start_rollout(bot)
    baking(bot, 0)
    # each attempt at the 50% step is asked to wait 2 s: the second wait would pass the
    # step's 3 s budget, so it gives up after two attempts
    bot.cf.inject("POST", DEPLOYMENTS, 503, count=2, retry_after=2)

    final = ended(bot)

    assert final.state is State.FAILED
    assert "step 50% could not be deployed" in final.outcome
    assert "503 twice in 2 s" in final.outcome
    assert "its retry budget of 3 s is spent" in final.outcome
    assert f"{stable[:8]} is back at 100% (read back from Cloudflare)" in final.outcome
    assert [status for _, status in post_answers(bot)] == [200, 503, 503, 200]
    assert posts(bot) == [split((new, 10), (stable, 90)), split((stable, 100))]
    assert bot.cf.active_split("tax-api") == [(stable, 100.0)]
    failed = next(e for e in bot.audit(1) if e.action == "release.failed")
    assert failed.detail["stable_restored"] is True
    told = bot.wait_for(
        lambda: [
            m.text
            for m in bot.slack.channel_messages(RELEASES)
            if m.thread_ts is None and not m.blocks and "failed" in m.text
        ],
        what="the channel is told",
    )
    assert "R-1" in told[-1] and "<@U0CAROL>" in told[-1] and "back at 100%" in told[-1]
    bot.wait_for(lambda: "Failed" in str(bot.card("R-1").blocks), what="the card")
