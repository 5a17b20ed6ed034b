"""Pre-deploy checks over HTTP: the bot reads GitHub (the stand-in, held to GitHub's REST
description) and Workers Builds (the Cloudflare simulator) before a production deploy may be
approved."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.config import parse_config
from bot.github.seed import seed_example
from bot.github.standin import create_standin as create_github
from bot.github.standin_state import GitHubState
from bot.runtime import Runtime
from bot.web import create_web_app
from storage.db import upgrade
from tests.fixtures.bot import BotHarness, config_data, make_settings
from tests.fixtures.servers import ServerThread

REPO = "battleborn/tax-api"
GH_TOKEN = "gh-e2e-token-5e1f0c9a"


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    upgrade(sqlite_url)
    return sqlite_url


@pytest.fixture
def github() -> Iterator[tuple[ServerThread, GitHubState]]:
    state = GitHubState()
    seed_example(state)
    with ServerThread(create_github(state, token=GH_TOKEN, validate_contract=True)) as server:
        yield server, state
    assert state.contract_violations == [], state.contract_violations


@pytest.fixture
def checked(
    db_url: str,
    cf_server: Any,
    slack_standin: Any,
    github: tuple[ServerThread, GitHubState],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[BotHarness, GitHubState]]:
    gh_server, gh_state = github
    monkeypatch.setenv("RELEASEBOT_GITHUB_TOKEN", GH_TOKEN)
    data = config_data()
    data["policies"]["production"]["checks"] = {
        "github": {"repository": REPO, "token_env": "RELEASEBOT_GITHUB_TOKEN"},
        "required": ["ci", "codeql"],
        "review": "approved",
        "builds": "success",
        "poll": "1s",
        "settle_within": "2m",
    }
    cf = cf_server.state
    for number, (tag, sha) in enumerate(gh_state.tags[REPO].items(), start=1):
        pull = f"https://github.com/{REPO}/pull/{number}"
        cf.record_build(cf.version_id("tax-api", tag), REPO, sha, pull_request_url=pull)
    slack_server, slack_state = slack_standin
    settings = make_settings(
        db_url, slack_server.url, cf_server.base_url, cf_server.token, github_api_url=gh_server.url
    )
    rt = Runtime(settings, parse_config(data))
    with ServerThread(create_web_app(rt)) as server:
        harness = BotHarness(server, rt, slack_state, cf)
        yield harness, gh_state
        harness.idle()
        harness.http.close()
    assert cf.contract_violations == []


def card_text(bot: BotHarness, key: str = "R-1") -> str:
    card = bot.card(key)
    return str(card.blocks) if card is not None else ""


def refusal_for(bot: BotHarness, user: str) -> str:
    return "\n".join(m.text for m in bot.ephemerals(user))


def test_a_red_check_refuses_approve_until_it_turns_green(
    checked: tuple[BotHarness, GitHubState],
) -> None:
    bot, gh = checked
    sha = gh.tags[REPO]["v1.4.2"]
    gh.set_check(REPO, sha, "codeql", "completed", "failure")
    assert bot.command("deploy tax-api v1.4.2 to production").status_code == 200
    bot.wait_for(lambda: "✗" in card_text(bot), what="the checklist with a red check")
    text = card_text(bot)
    assert "Built from" in text and sha[:7] in text and "build success" in text
    assert "✓ <https://github.com/battleborn/tax-api/runs/" in text and "|ci>" in text
    assert (
        "|codeql> — failure" in text
        and "✓ <https://github.com/battleborn/tax-api/pull/3|review>" in text
    )

    bot.click("Approve", "R-1", user="U0ALICE")
    said = bot.wait_for(lambda: refusal_for(bot, "U0ALICE"), what="the refusal")
    assert "R-1 cannot be approved: its pre-deploy checks did not pass: codeql (failure)" in said
    assert bot.server.call(bot.rt.votes.votes(1)) == []

    gh.set_check(REPO, sha, "codeql", "completed", "success")  # a re-run went green
    bot.wait_for(lambda: "all green" in card_text(bot), timeout=10, what="the card turning green")
    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2 approvals" in card_text(bot), what="the vote counted")
    actions = [e.action for e in bot.audit(1)]
    assert actions.count("checks.read") == 2 and "vote.approved" in actions
    reads = [e.detail for e in bot.audit(1) if e.action == "checks.read"]
    assert reads[0]["verdict"] == "failed" and reads[1]["verdict"] == "passed"
    assert reads[0]["checks"] == {
        "ci": "success",
        "codeql": "failure",
        "review": "success",
        "build": "success",
    }


def test_a_pull_request_approved_only_by_its_author_is_refused(
    checked: tuple[BotHarness, GitHubState],
) -> None:
    bot, gh = checked
    repo = gh.repo(REPO)
    repo.pulls[2].reviews.clear()
    gh.review(REPO, 3, "ana", "APPROVED")  # ana wrote pull request #3
    gh.set_check(REPO, gh.tags[REPO]["v1.4.2"], "codeql", "completed", "success")
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: "approved only by its author" in card_text(bot), what="the review line")
    bot.click("Approve", "R-1", user="U0ALICE")
    said = bot.wait_for(lambda: refusal_for(bot, "U0ALICE"), what="the refusal")
    assert "review (#3 is approved only by its author, ana)" in said


def test_a_rate_limit_is_waited_out_and_the_card_says_so(
    checked: tuple[BotHarness, GitHubState],
) -> None:
    bot, gh = checked
    gh.set_check(REPO, gh.tags[REPO]["v1.4.2"], "codeql", "completed", "success")
    # the first limited request is the diff's comparison, which does not wait; the second is
    # the checks' first read, which does
    gh.limit("primary", reset_in=2, times=2)
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: "GitHub asked to wait (rate limit)" in card_text(bot), what="the wait")
    bot.wait_for(lambda: "all green" in card_text(bot), timeout=10, what="read after the reset")
    assert "GitHub asked to wait" not in card_text(bot)
    limited = [r for r in gh.requests if r["status"] == 403]
    assert len(limited) == 2


def test_versions_say_which_build_made_them(checked: tuple[BotHarness, GitHubState]) -> None:
    bot, gh = checked
    bot.command("versions tax-api production")
    said = bot.wait_for(lambda: refusal_for(bot, "U0CAROL"), what="the versions list")
    head = gh.tags[REPO]["v1.4.2"][:7]
    assert "v1.4.2 — Faster receipt search · ana@example.com" in said
    assert f"from `{head}` on main" in said
