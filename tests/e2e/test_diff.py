"""The diff card over HTTP: what ships between the live version and the candidate, read
from the Cloudflare simulator's version details and the GitHub stand-in's comparison."""

from __future__ import annotations

from bot.github.standin_state import GitHubState
from tests.e2e.test_checks import card_text, checked, db_url, github, refusal_for
from tests.fixtures.bot import BotHarness

__all__ = ["checked", "db_url", "github"]  # the fixtures, shared with the checks' tests


def _versions(bot: BotHarness) -> tuple[object, object]:
    cf = bot.cf
    live = cf.version("tax-api", cf.version_id("tax-api", "v1.4.1"))
    candidate = cf.version("tax-api", cf.version_id("tax-api", "v1.4.2"))
    return live, candidate


def test_the_card_shows_bindings_secrets_and_commits_before_approval(
    checked: tuple[BotHarness, GitHubState],
) -> None:
    bot, gh = checked
    live, candidate = _versions(bot)
    with bot.cf.lock:
        live.secrets = ["OLD_TOKEN"]  # type: ignore[attr-defined]
        candidate.bindings = [{"type": "queue", "name": "JOBS", "id": "jobs"}]  # type: ignore[attr-defined]
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: "What ships" in card_text(bot), what="the diff on the card")
    text = card_text(bot)
    assert "Bindings added: `JOBS` (queue)" in text
    assert "Secrets removed: `OLD_TOKEN`" in text
    # the two commits of v1.4.2's pull request, newest first, with their author
    assert "*Commits:* <https://github.com/battleborn/tax-api/compare/" in text
    assert "Faster receipt search — ana" in text and "Faster receipt search: first pass" in text
    assert "Durable Object" not in text and "Downgrade" not in text
    assert any("/compare/" in r["path"] for r in gh.requests)


def test_a_durable_object_migration_is_warned_about_before_approval(
    checked: tuple[BotHarness, GitHubState],
) -> None:
    bot, _ = checked
    live, candidate = _versions(bot)
    with bot.cf.lock:
        live.migration_tag = "v1"  # type: ignore[attr-defined]
        candidate.migration_tag = "v2"  # type: ignore[attr-defined]
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: "Durable Object migration" in card_text(bot), what="the warning")
    text = card_text(bot)
    assert "v1 → v2" in text and "no gradual rollout" in text
    assert "rollback to the live version will be refused" in text


def test_a_downgrade_is_called_out_in_plan(checked: tuple[BotHarness, GitHubState]) -> None:
    bot, _ = checked
    bot.command("plan tax-api v1.4.0 to production")
    said = bot.wait_for(lambda: refusal_for(bot, "U0CAROL"), what="the plan")
    assert "Downgrade" in said and "v1.4.0 is older than the live v1.4.1" in said
    assert "live has that the candidate lacks: this release takes them out" in said
