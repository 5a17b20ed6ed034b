"""The promise, end to end over signed HTTP: nothing changes an environment unless the policy
says so, the bot never deploys over a person, and text from outside is data.

Each test is one hole that was open: a rollback to any uploaded version, ``--emergency``
without a freeze, an unfreeze by a deployer of another service, outside text read as Slack
markup, a hotfix overwritten by the next gate, a queued release splitting against the
stable version it saw when it was requested."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from bot.engine.states import State
from storage.audit_queries import recent_audit
from tests.fixtures.bot import RELEASES, BotHarness, config_data


def slack_escaped(text: str) -> str:
    """Slash command text as Slack sends it: ``&``, ``<`` and ``>`` as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ephemeral_text(bot: BotHarness, user: str) -> str:
    return "\n".join(m.text for m in bot.ephemerals(user))


def channel_text(bot: BotHarness) -> str:
    return "\n".join(m.text for m in bot.slack.channel_messages(RELEASES))


def posts(bot: BotHarness, script: str) -> list[list[dict[str, Any]]]:
    return [p["body"]["versions"] for p in bot.cf.deployment_posts if p["script"] == script]


def split(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"version_id": v, "percentage": p} for v, p in pairs]


def succeeded(bot: BotHarness, release_id: int) -> Any:
    return bot.wait_for(
        lambda: (r := bot.release(release_id)) and r.state is State.SUCCEEDED and r,
        timeout=30,
        what=f"R-{release_id} to succeed",
    )


# -- one decision for every change ---------------------------------------------------------


def test_a_rollback_to_a_version_that_never_ran_is_refused_also_during_a_freeze(
    bot: BotHarness,
) -> None:
    never_live = bot.cf.version_id("tax-api", "v1.4.0")  # uploaded, never deployed
    bot.command(f"rollback tax-api in production to {never_live}")
    bot.wait_for(lambda: "never ran" in ephemeral_text(bot, "U0CAROL"), what="refusal")
    assert "never ran in production; deploy it instead" in ephemeral_text(bot, "U0CAROL")

    bot.command('freeze production until 2h --reason "quarter close"', user="U0ALICE")
    bot.wait_for(lambda: "froze production" in channel_text(bot), what="the freeze")
    bot.command(f'rollback tax-api in production to {never_live} --reason "break glass"')
    bot.wait_for(
        lambda: ephemeral_text(bot, "U0CAROL").count("never ran") == 2, what="second refusal"
    )
    bot.idle()
    assert bot.release(1) is None
    assert posts(bot, "tax-api") == []
    records = bot.server.call(recent_audit(bot.rt.db, None, None, 100))
    refusals = [r for r in records if r["action"] == "refused" and r["actor"] == "U0CAROL"]
    assert len(refusals) == 2  # each refusal is on the audit trail


def test_emergency_without_a_freeze_is_refused(bot: BotHarness) -> None:
    bot.command('deploy tax-api v1.4.2 to production --emergency --reason "filing outage"')
    bot.wait_for(lambda: ephemeral_text(bot, "U0CAROL"), what="refusal")
    text = ephemeral_text(bot, "U0CAROL")
    assert "--emergency is for a change freeze" in text and "production" in text
    bot.idle()
    assert bot.release(1) is None and bot.cards() == []
    assert posts(bot, "tax-api") == []


def _freezes(bot: BotHarness) -> list[Any]:
    return list(bot.server.call(bot.rt.service.rails_repo.freezes("production")))


class TestFreezeRights:
    """tax-api and tax-web both have production; U0ALICE may deploy only tax-api there."""

    @pytest.fixture
    def bot_config(self) -> dict[str, Any]:
        data = config_data()
        data["policies"]["production"]["deployers"] = ["U0ALICE", "U0BOB"]
        data["policies"]["web-production"] = {
            **data["policies"]["production"],
            "deployers": ["U0BOB"],
        }
        data["services"]["tax-web"]["environments"]["production"]["policy"] = "web-production"
        return data

    def test_freeze_and_unfreeze_need_rights_on_every_service_with_the_environment(
        self, bot: BotHarness
    ) -> None:
        bot.command('freeze production until 2h --reason "quarter close"', user="U0ALICE")
        bot.wait_for(lambda: ephemeral_text(bot, "U0ALICE"), what="refusal")
        assert "tax-web" in ephemeral_text(bot, "U0ALICE")
        assert _freezes(bot) == []

        bot.command('freeze production until 2h --reason "quarter close"', user="U0BOB")
        bot.wait_for(lambda: "froze production" in channel_text(bot), what="the freeze")

        bot.command("unfreeze production", user="U0ALICE")
        bot.wait_for(lambda: ephemeral_text(bot, "U0ALICE").count("tax-web") == 2, what="refusal")
        assert len(_freezes(bot)) == 1

        bot.command("unfreeze production", user="U0BOB")
        bot.wait_for(lambda: "ended the freeze on production" in channel_text(bot), what="ended")


# -- text from outside is data ---------------------------------------------------------------

EVIL = ("<!channel>", "<!here>", "<@U0EVIL>", "<https://evil.example|approved by CAB>")


def _mrkdwn_texts(value: Any, found: list[str]) -> None:
    """Every string Slack reads as mrkdwn in a call's arguments (``text``, mrkdwn objects,
    block fields); plain_text objects are shown as typed and are left out."""
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            return
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                found.append(item)
            else:
                _mrkdwn_texts(item, found)
    elif isinstance(value, list):
        for item in value:
            _mrkdwn_texts(item, found)
    elif isinstance(value, str) and value.startswith(("[", "{")):
        try:
            _mrkdwn_texts(json.loads(value), found)  # blocks sent form-encoded
        except ValueError:
            return


def test_outside_text_is_escaped_in_every_slack_call(bot: BotHarness) -> None:
    vid = bot.cf.upload_version(
        "tax-api-staging", tag="<!here>&co", message="<https://evil.example|approved by CAB> &"
    )
    reason = "<!channel> <@U0EVIL> <https://evil.example|approved by CAB> & more"
    bot.command(slack_escaped(f'deploy tax-api {vid} to staging --reason "{reason}"'))
    succeeded(bot, 1)
    bot.command(slack_escaped('lock tax-api production --reason "<!channel> & <@U0EVIL>"'))
    bot.wait_for(lambda: "locked tax-api/production" in channel_text(bot), what="the lock")
    bot.cf.deploy_direct(
        "tax-api-staging",
        bot.cf.version_id("tax-api-staging", "v1.4.1"),
        author_email="<!channel>&x@example.com",
        message="<@U0EVIL> <https://evil.example|ok>",
    )
    assert bot.server.call(bot.rt.drift.run())
    bot.command("history tax-api staging")
    bot.wait_for(lambda: "outside the bot" in channel_text(bot), what="drift announced")
    bot.idle()

    texts: list[str] = []
    for _method, args in bot.slack.calls:
        _mrkdwn_texts(args, texts)
    assert texts, "the bot made Slack calls"
    shown = "\n".join(texts)
    for raw in EVIL:
        assert raw not in shown, raw
    # every & the bot sends starts an entity
    assert re.findall(r"&(?!amp;|lt;|gt;)", shown) == []
    # the words themselves arrive, escaped, where they are shown
    assert "&lt;!channel&gt; &lt;@U0EVIL&gt;" in shown  # the reason
    assert "&lt;!here&gt;&amp;co" in shown  # the tag
    assert "&lt;!channel&gt;&amp;x@example.com" in shown  # the drift author
    # the engine keeps what the person typed, as plain data
    assert bot.release(1).reason == reason
    requested = next(e for e in bot.audit(1) if e.action == "release.requested")
    assert requested.detail["reason"] == reason


# -- the bot never deploys over a person -------------------------------------------------------


def _start_production_rollout(bot: BotHarness) -> None:
    bot.cf.set_traffic("tax-api", 2000)
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: (c := bot.card("R-1")) and "Approve" in str(c.blocks), what="card")
    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-1").blocks), what="first approval")
    bot.click("Approve", "R-1", user="U0BOB")


@pytest.fixture
def bot_config() -> dict[str, Any]:
    return config_data(bake="2s")


def test_a_hotfix_made_by_hand_during_a_bake_pauses_the_release(bot: BotHarness) -> None:
    new = bot.cf.version_id("tax-api", "v1.4.2")
    stable = bot.cf.version_id("tax-api", "v1.4.1")
    _start_production_rollout(bot)
    bot.wait_for(
        lambda: (r := bot.release(1)) and r.state is State.VERIFYING and r.current_step == 0,
        what="10% baking",
    )
    hotfix = bot.cf.upload_version("tax-api", tag="hotfix-1", message="urgent fix")
    bot.cf.deploy_direct("tax-api", hotfix, author_email="oncall@example.com")

    paused = bot.wait_for(
        lambda: (r := bot.release(1)) and r.paused and r, timeout=20, what="the release pauses"
    )
    assert not paused.state.is_terminal
    bot.wait_for(lambda: "changed outside the bot" in channel_text(bot), what="drift message")
    text = channel_text(bot)
    assert "R-1 paused" in text and "oncall@example.com" in text
    # long past the bake: the bot has not touched what the person deployed
    time.sleep(5)
    bot.idle()
    assert bot.release(1).paused
    assert posts(bot, "tax-api") == [split((new, 10), (stable, 90))]
    assert bot.cf.active_split("tax-api") == [(hotfix, 100.0)]
    assert bot.release(1).state is State.VERIFYING


class TestQueue:
    @pytest.fixture
    def bot_config(self) -> dict[str, Any]:
        data = config_data(bake="1s")
        data["policies"]["staging"]["rollout"] = {
            "steps": [50, 100],
            "bake": "1s",
            "min_requests": 0,
            "probe_interval": "1s",
        }
        return data

    def test_a_queued_release_splits_against_the_version_live_when_it_starts(
        self, bot: BotHarness
    ) -> None:
        first = bot.cf.version_id("tax-api-staging", "v1.4.2")
        second = bot.cf.version_id("tax-api-staging", "v1.4.0")
        seen_at_request = bot.cf.version_id("tax-api-staging", "v1.4.1")
        bot.command("deploy tax-api v1.4.2 to staging")
        bot.wait_for(lambda: bot.release(1) and bot.release(1).steps, what="R-1 rolling out")
        bot.command("deploy tax-api v1.4.0 to staging", user="U0BOB")
        bot.wait_for(lambda: bot.release(2), what="R-2 stored")

        succeeded(bot, 1)
        done = succeeded(bot, 2)
        assert done.stable_version_id == first
        assert posts(bot, "tax-api-staging") == [
            split((first, 50), (seen_at_request, 50)),
            split((first, 100)),
            split((second, 50), (first, 50)),
            split((second, 100)),
        ]
