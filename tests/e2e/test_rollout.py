"""Gradual rollouts over HTTP: 10% → 50% → 100% behind health gates, automatic rollback,
the smoke test, manual controls (buttons and commands) and the D1 bookmark."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest

from bot.cloudflare.sim_state import EXAMPLE_DATABASE_ID
from bot.engine.model import Release
from bot.engine.states import State
from tests.fixtures.bot import RELEASES, BotHarness, config_data
from tests.fixtures.db import SQLITE_ONLY

RATE = r"\d+\.\d{{1,3}}%"
# Below 100% the new version is compared with the stable one; at 100% nothing is left to compare.
GATE_LINE = rf"{{pct}}%: [\d,]+ requests, {RATE} errors( vs {RATE} stable)? — pass"


# -- helpers ------------------------------------------------------------------------------


def versions(bot: BotHarness) -> tuple[str, str]:
    """(the new version v1.4.2, the stable one v1.4.1) of tax-api."""
    return bot.cf.version_id("tax-api", "v1.4.2"), bot.cf.version_id("tax-api", "v1.4.1")


def posts(bot: BotHarness, script: str = "tax-api") -> list[list[dict[str, Any]]]:
    return [p["body"]["versions"] for p in bot.cf.deployment_posts if p["script"] == script]


def split(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"version_id": v, "percentage": p} for v, p in pairs]


def thread(bot: BotHarness, key: str) -> str:
    card = bot.card(key)
    assert card is not None, f"no card for {key}"
    return "\n".join(m.text for m in bot.slack.channel_messages(RELEASES) if m.thread_ts == card.ts)


def announcements(bot: BotHarness) -> list[str]:
    """Messages in the release channel that are neither cards nor thread replies."""
    return [
        m.text for m in bot.slack.channel_messages(RELEASES) if m.thread_ts is None and not m.blocks
    ]


def ephemeral_text(bot: BotHarness, user: str) -> str:
    return "\n".join(m.text for m in bot.ephemerals(user))


def request_and_approve(bot: BotHarness, key: str = "R-1", tag: str = "v1.4.2") -> None:
    """carol asks for a production deploy; alice and bob approve it on the card."""
    assert bot.command(f"deploy tax-api {tag} to production").status_code == 200
    bot.wait_for(lambda: (c := bot.card(key)) and "Approve" in str(c.blocks), what=f"{key}'s card")
    bot.click("Approve", key, user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card(key).blocks), what="the first approval")
    bot.click("Approve", key, user="U0BOB")


def at_step(bot: BotHarness, release_id: int, index: int) -> Release:
    """Wait until step ``index`` is deployed and baking."""

    def baking() -> Release | None:
        r = bot.release(release_id)
        ok = r is not None and r.state is State.VERIFYING and r.current_step == index
        return r if ok else None

    return bot.wait_for(baking, timeout=20, what=f"step {index} baking")


def ended(bot: BotHarness, release_id: int, timeout: float = 30) -> Release:
    """The release once it ended, and what it said on the way posted (a gate's report is
    said right after its verdict is stored, so it can come a moment after the end)."""
    final: Release = bot.wait_for(
        lambda: (r := bot.release(release_id)) and r.state.is_terminal and r,
        timeout=timeout,
        what=f"R-{release_id} to end",
    )
    bot.idle()
    return final


@pytest.fixture(autouse=True)
def _traffic(bot: BotHarness) -> None:
    # enough requests in a 1 s bake for every gate to judge on (min_requests is 10)
    bot.cf.set_traffic("tax-api", 2000)


# -- the happy path and the automatic rollback --------------------------------------------


def test_a_good_version_walks_10_50_100_with_one_deployment_per_step(bot: BotHarness) -> None:
    new, stable = versions(bot)
    request_and_approve(bot)

    final = ended(bot, 1)

    assert final.state is State.SUCCEEDED, final.outcome
    assert posts(bot) == [
        split((new, 10), (stable, 90)),
        split((new, 50), (stable, 50)),
        split((new, 100)),
    ]
    assert bot.cf.active_split("tax-api") == [(new, 100.0)]
    text = thread(bot, "R-1")
    for pct in (10, 50, 100):
        line = GATE_LINE.format(pct=pct)
        assert re.search(line, text), f"no gate line for {pct}%:\n{text}"
        assert (" vs " in re.search(line, text)[0]) == (pct < 100)
    actions = [e.action for e in bot.audit(1)]
    assert actions.count("release.step_deployed") == 3
    assert actions.count("gate.passed") == 3
    assert "gate.failed" not in actions
    assert [s.percent for s in final.steps] == [10, 50, 100]
    assert all(s.deployment_id for s in final.steps)
    bot.wait_for(lambda: "Succeeded" in str(bot.card("R-1").blocks), what="the card")


def test_a_failing_version_is_rolled_back_at_the_first_step(bot: BotHarness) -> None:
    new, stable = versions(bot)
    bot.cf.set_error_rate("tax-api", new, 0.3)
    request_and_approve(bot)

    final = ended(bot, 1)

    assert final.state is State.ROLLED_BACK, final.outcome
    assert posts(bot) == [split((new, 10), (stable, 90)), split((stable, 100))]
    assert bot.cf.active_split("tax-api") == [(stable, 100.0)]
    assert "health gate failed" in final.outcome and "error rate" in final.outcome
    # the channel hears it rolled back and why, with the requester and approvers named
    told = bot.wait_for(
        lambda: [t for t in announcements(bot) if "rolled back" in t], what="announcement"
    )[-1]
    assert "R-1" in told and "error rate" in told and stable[:8] in told
    for person in ("U0CAROL", "U0ALICE", "U0BOB"):
        assert f"<@{person}>" in told
    text = bot.wait_for(lambda: "Timeline:" in thread(bot, "R-1") and thread(bot, "R-1"))
    assert re.search(rf"10%: [\d,]+ requests, {RATE} errors vs {RATE} stable — fail".format(), text)
    # every line's time is a Slack date token (the reader's own time), not a UTC clock
    timeline = text[text.index("Timeline:") :].split("\n")
    entry_lines = [line for line in timeline if line.startswith("- ")]
    assert entry_lines and all(
        re.match(r"- <!date\^\d+\^\{date_short_pretty\} at \{time_secs\}\|[^>]+ UTC> · ", line)
        for line in entry_lines
    )
    # the stable version by its tag, beside its id
    assert re.search(rf"rolled back to \S+ \({stable[:8]}\)", text), text
    entries = bot.audit(1)
    failed = [e for e in entries if e.action == "gate.failed"]
    assert len(failed) == 1 and failed[0].detail["step_percent"] == 10
    assert failed[0].detail["new_rate"] > 0.2
    rolled = [e for e in entries if e.action == "release.rolled_back"]
    assert len(rolled) == 1
    assert rolled[0].detail["to_version_id"] == stable
    assert 0 <= rolled[0].detail["time_to_rollback_s"] < 10
    assert rolled[0].detail["verified"] is True
    card = bot.wait_for(lambda: "Rolled back" in str(bot.card("R-1").blocks) and bot.card("R-1"))
    assert re.search(rf"\*Stable\*\\n\S+ `{stable[:8]}`", str(card.blocks)), card.blocks


def test_a_promote_racing_the_bake_timer_judges_and_deploys_each_step_once(
    bot: BotHarness,
) -> None:
    """The promote drives the release at once while the 10% bake's own wake-up is still
    due: that wake-up must neither judge nor deploy anything a second time."""
    new, stable = versions(bot)
    request_and_approve(bot)
    at_step(bot, 1, 0)
    bot.command("promote R-1", user="U0ALICE")

    final = ended(bot, 1)
    bot.idle()

    assert final.state is State.SUCCEEDED, final.outcome
    assert posts(bot) == [
        split((new, 10), (stable, 90)),
        split((new, 50), (stable, 50)),
        split((new, 100)),
    ]
    actions = [e.action for e in bot.audit(1)]
    assert actions.count("gate.passed") == 3 and actions.count("release.step_deployed") == 3
    text = thread(bot, "R-1")
    for pct in (10, 50, 100):
        assert len(re.findall(rf":white_check_mark: {pct}%: ", text)) == 1, text
    assert ":hourglass:" not in text


# -- health probes and the smoke test -----------------------------------------------------


class TestHealthChecks:
    @pytest.fixture
    def bot_config(self, cf_server: Any) -> dict[str, Any]:
        data = config_data(bake="5s")
        data["policies"]["production"]["rollout"]["probe_failures"] = 2
        production = data["services"]["tax-api"]["environments"]["production"]
        production["health_url"] = f"{cf_server.url}/__workers/tax-api/healthz"
        production["version_header"] = "X-Worker-Version"  # what the simulated Workers say
        return data

    def test_failing_health_probes_fail_the_gate(self, bot: BotHarness) -> None:
        new, stable = versions(bot)
        request_and_approve(bot)
        at_step(bot, 1, 0)
        bot.cf.set_healthy("tax-api", new, False)  # the smoke test passed; now it breaks

        final = ended(bot, 1)

        assert final.state is State.ROLLED_BACK, final.outcome
        assert posts(bot) == [
            split((new, 0), (stable, 100)),  # the smoke test's deployment
            split((new, 10), (stable, 90)),
            split((stable, 100)),
        ]
        assert "health probes failed" in final.outcome
        failed = [e for e in bot.audit(1) if e.action == "gate.failed"]
        assert len(failed) == 1 and failed[0].detail["probe_failures"] >= 2
        # the probes failed the gate before the 5 s bake was over
        assert final.finished_at - final.steps[0].deployed_at < timedelta(seconds=5)

    def test_a_failing_smoke_test_stops_the_release_before_any_traffic(
        self, bot: BotHarness
    ) -> None:
        new, stable = versions(bot)
        bot.cf.set_healthy("tax-api", new, False)
        request_and_approve(bot)

        final = ended(bot, 1)

        assert final.state is State.FAILED
        assert "smoke test failed" in final.outcome
        # in the deployment at 0% (so the override reaches it), never a share above that,
        # then taken out again: the stable version alone, in one deployment
        assert posts(bot) == [split((new, 0), (stable, 100)), split((stable, 100))]
        assert bot.cf.active_split("tax-api") == [(stable, 100.0)]
        assert "answered 500" in final.outcome  # what the probe got, in words
        text = bot.wait_for(lambda: "No user saw it" in thread(bot, "R-1") and thread(bot, "R-1"))
        assert "smoke test failed" in text
        actions = [e.action for e in bot.audit(1)]
        assert actions.count("smoke.deployed") == 1 and actions.count("smoke.failed") == 1
        assert "release.step_deployed" not in actions
        bot.wait_for(lambda: "Smoke test:* failed" in str(bot.card("R-1").blocks), what="card")

    @SQLITE_ONLY
    def test_the_smoke_test_reaches_the_new_version_and_says_so(self, bot: BotHarness) -> None:
        new, stable = versions(bot)
        request_and_approve(bot)

        final = ended(bot, 1)

        assert final.state is State.SUCCEEDED, final.outcome
        assert posts(bot)[:2] == [split((new, 0), (stable, 100)), split((new, 10), (stable, 90))]
        passed = [e for e in bot.audit(1) if e.action == "smoke.passed"]
        assert len(passed) == 1 and passed[0].detail["answered_by"] == new
        card = str(bot.card("R-1").blocks)
        assert f"v1.4.2 `{new[:8]}` answered its health check at 0%" in card

    @SQLITE_ONLY
    def test_an_answer_from_the_stable_version_does_not_pass_the_smoke_test(
        self, bot: BotHarness
    ) -> None:
        new, stable = versions(bot)
        # the 0% deployment takes a moment to reach the Workers: the override is ignored
        # (the stable version answers, healthy) until then
        bot.cf.override_lag = timedelta(seconds=1.5)
        request_and_approve(bot)

        final = ended(bot, 1)

        assert final.state is State.SUCCEEDED, final.outcome
        smoke = final.steps[0].gate["smoke"]
        assert smoke["outcome"] == "confirmed" and smoke["answered_by"] == new
        assert smoke["probes"]["probes"] >= 2  # the first answer, from stable, did not count
        assert posts(bot)[0] == split((new, 0), (stable, 100))

    @SQLITE_ONLY
    def test_a_worker_that_does_not_report_its_version_is_not_confirmed(
        self, bot: BotHarness
    ) -> None:
        new, _ = versions(bot)
        bot.cf.set_reports_version("tax-api", new, False)
        request_and_approve(bot)

        final = ended(bot, 1)

        assert final.state is State.SUCCEEDED, final.outcome
        bot.wait_for(
            lambda: "Smoke test:* could not confirm the version" in str(bot.card("R-1").blocks),
            what="the card saying the smoke test could not confirm the version",
        )
        assert "could not confirm which version answered" in thread(bot, "R-1")
        passed = [e for e in bot.audit(1) if e.action == "smoke.passed"]
        assert len(passed) == 1 and passed[0].detail["confirmed"] is False


# -- people steering a rollout ------------------------------------------------------------


class TestControls:
    BAKE = timedelta(seconds=2)

    @pytest.fixture
    def bot_config(self) -> dict[str, Any]:
        return config_data(bake="2s")

    def test_card_buttons_pause_resume_promote_and_roll_back(self, bot: BotHarness) -> None:
        new, stable = versions(bot)
        request_and_approve(bot)
        first = at_step(bot, 1, 0)

        bot.click("Pause", "R-1", user="U0ALICE")
        bot.wait_for(lambda: "Resume" in str(bot.card("R-1").blocks), what="paused card")
        assert bot.release(1).paused
        assert "(paused)" in bot.card("R-1").text or "(paused)" in str(bot.card("R-1").blocks)
        # past the end of the bake: a paused release takes no step
        wait = first.steps[0].deployed_at + self.BAKE + timedelta(seconds=0.7)
        time.sleep(max(0.0, (wait - bot.rt.clock.now()).total_seconds()))
        paused = bot.release(1)
        assert paused.state is State.VERIFYING and paused.current_step == 0 and paused.paused
        assert len(posts(bot)) == 1

        bot.click("Resume", "R-1", user="U0ALICE")
        second = at_step(bot, 1, 1)  # the bake is long over: the gate judges at once
        assert not second.paused
        assert posts(bot)[1] == split((new, 50), (stable, 50))

        bot.click("Promote", "R-1", user="U0ALICE")
        third = at_step(bot, 1, 2)
        assert third.steps[2].deployed_at - third.steps[1].deployed_at < self.BAKE
        assert posts(bot)[2] == split((new, 100))

        bot.click("Roll back", "R-1", user="U0BOB")
        final = ended(bot, 1)

        assert final.state is State.ROLLED_BACK
        assert final.outcome == "rolled back on request" and final.ended_by == "U0BOB"
        assert posts(bot) == [
            split((new, 10), (stable, 90)),
            split((new, 50), (stable, 50)),
            split((new, 100)),
            split((stable, 100)),
        ]
        assert bot.cf.active_split("tax-api") == [(stable, 100.0)]
        actions = [(e.action, e.actor) for e in bot.audit(1)]
        for expected in (
            ("release.paused", "U0ALICE"),
            ("release.resumed", "U0ALICE"),
            ("release.promoted", "U0ALICE"),
            ("release.rolled_back", "U0BOB"),
        ):
            assert expected in actions
        assert [a for a, _ in actions].count("release.step_deployed") == 3
        text = bot.wait_for(lambda: "Timeline:" in thread(bot, "R-1") and thread(bot, "R-1"))
        assert "<@U0ALICE> paused R-1" in text and "<@U0ALICE> resumed R-1" in text
        assert "ended the bake at 50%" in text

    def test_commands_pause_resume_and_promote(self, bot: BotHarness) -> None:
        new, stable = versions(bot)
        request_and_approve(bot)
        at_step(bot, 1, 0)

        bot.command("pause R-1", user="U0ALICE")
        bot.wait_for(lambda: bot.release(1).paused, what="paused")
        bot.command("promote R-1", user="U0ALICE")
        refused = bot.wait_for(
            lambda: "resume R-1 first" in ephemeral_text(bot, "U0ALICE"), what="refusal"
        )
        assert refused
        bot.command("resume R-1", user="U0ALICE")
        bot.wait_for(lambda: not bot.release(1).paused, what="resumed")
        assert "pause done" in ephemeral_text(bot, "U0ALICE")

        for index in (0, 1, 2):  # each promote ends that step's bake at once
            baking = at_step(bot, 1, index)
            bot.command("promote R-1", user="U0ALICE")
            if index < 2:
                following = at_step(bot, 1, index + 1)
                later = following.steps[index + 1].deployed_at - baking.steps[index].deployed_at
                assert later < self.BAKE
        final = ended(bot, 1)

        assert final.state is State.SUCCEEDED, final.outcome
        assert final.finished_at - final.steps[2].deployed_at < self.BAKE
        assert posts(bot) == [
            split((new, 10), (stable, 90)),
            split((new, 50), (stable, 50)),
            split((new, 100)),
        ]
        actions = [e.action for e in bot.audit(1)]
        assert actions.count("release.promoted") == 3
        assert actions.count("gate.passed") == 3
        assert actions.count("refused") == 1


# -- D1 -----------------------------------------------------------------------------------


class TestD1Bookmark:
    @pytest.fixture
    def bot_config(self) -> dict[str, Any]:
        data = config_data()
        production = data["services"]["tax-api"]["environments"]["production"]
        production["d1_database_id"] = EXAMPLE_DATABASE_ID
        return data

    def test_bookmark_before_the_first_step_and_restore_db_after_approvals(
        self, bot: BotHarness
    ) -> None:
        new, _ = versions(bot)
        before = bot.cf.database(EXAMPLE_DATABASE_ID).current
        bot.cf.set_error_rate("tax-api", new, 0.3)
        request_and_approve(bot)
        rolled = ended(bot, 1)
        assert rolled.state is State.ROLLED_BACK

        # taken before the first step, stored on the release and in its audit entry
        assert rolled.d1_bookmark == before
        started = next(e for e in bot.audit(1) if e.action == "release.started")
        assert started.detail["d1_bookmark"] == before
        paths = [(r["method"], r["path"]) for r in bot.cf.requests_log]
        bookmark_read = next(
            i for i, (m, p) in enumerate(paths) if m == "GET" and p.endswith("/bookmark")
        )
        first_post = next(
            i for i, (m, p) in enumerate(paths) if m == "POST" and p.endswith("/deployments")
        )
        assert bookmark_read < first_post
        told = bot.wait_for(
            lambda: [t for t in announcements(bot) if "restore-db R-1" in t], what="hint"
        )
        assert "does not touch D1" in told[-1]

        bot.cf.d1_write(EXAMPLE_DATABASE_ID)  # the bad version wrote to the database
        bot.command("restore-db R-1")
        bot.wait_for(
            lambda: (c := bot.card("R-2")) and "Approve" in str(c.blocks), what="R-2's card"
        )
        assert bot.release(2).state is State.AWAITING_APPROVAL
        assert not _restores(bot)  # nothing happens before the approvals
        bot.click("Approve", "R-2", user="U0ALICE")
        bot.wait_for(lambda: "1 of 2" in str(bot.card("R-2").blocks), what="first approval")
        bot.click("Approve", "R-2", user="U0BOB")

        restored = ended(bot, 2)

        assert restored.state is State.SUCCEEDED, restored.outcome
        assert [r["query"] for r in _restores(bot)] == [f"bookmark={before}"]
        assert bot.cf.database(EXAMPLE_DATABASE_ID).current != before  # a restore is a write
        text = bot.wait_for(lambda: "D1 restored" in thread(bot, "R-2") and thread(bot, "R-2"))
        assert before in text
        assert len(posts(bot)) == 2  # the restore deployed no Worker version


def _restores(bot: BotHarness) -> list[dict[str, Any]]:
    return [
        r
        for r in bot.cf.requests_log
        if r["method"] == "POST" and r["path"].endswith("/time_travel/restore")
    ]
