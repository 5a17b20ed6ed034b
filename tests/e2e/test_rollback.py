"""`/release rollback` over HTTP: back to the version that was at 100% before, or a named
one, in one deployment; reasons where the policy asks for them; Cloudflare's refusals in
words; a rollout in flight rolled back."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot.engine.model import Kind
from bot.engine.states import State
from tests.fixtures.bot import RELEASES, BotHarness, config_data


def posts(bot: BotHarness, script: str) -> list[list[dict[str, Any]]]:
    return [p["body"]["versions"] for p in bot.cf.deployment_posts if p["script"] == script]


def at_100(version_id: str) -> list[dict[str, Any]]:
    return [{"version_id": version_id, "percentage": 100}]


def ended(bot: BotHarness, release_id: int, timeout: float = 20) -> Any:
    """The release once it ended, and what it said on the way posted."""
    final = bot.wait_for(
        lambda: (r := bot.release(release_id)) and r.state.is_terminal and r,
        timeout=timeout,
        what=f"R-{release_id} to end",
    )
    bot.idle()
    return final


def ephemeral_text(bot: BotHarness, user: str) -> str:
    return "\n".join(m.text for m in bot.ephemerals(user))


def channel_text(bot: BotHarness) -> str:
    return "\n".join(m.text for m in bot.slack.channel_messages(RELEASES))


def deploy_staging(bot: BotHarness, tag: str = "v1.4.2") -> None:
    bot.command(f"deploy tax-api {tag} to staging")
    assert ended(bot, 1).state is State.SUCCEEDED


def test_rollback_returns_to_the_previous_version_in_one_deployment(bot: BotHarness) -> None:
    old = bot.cf.version_id("tax-api-staging", "v1.4.1")
    new = bot.cf.version_id("tax-api-staging", "v1.4.2")
    deploy_staging(bot)
    assert posts(bot, "tax-api-staging") == [at_100(new)]

    asked = time.monotonic()
    assert bot.command("rollback tax-api in staging").status_code == 200
    bot.wait_for(lambda: len(posts(bot, "tax-api-staging")) == 2, timeout=5, what="the POST")
    took = time.monotonic() - asked

    assert took < 1.0, f"the rollback reached Cloudflare {took:.2f} s after the request"
    assert posts(bot, "tax-api-staging") == [at_100(new), at_100(old)]
    rollback = ended(bot, 2)
    assert rollback.kind is Kind.ROLLBACK and rollback.state is State.SUCCEEDED
    assert rollback.version_id == old and rollback.stable_version_id == new
    assert bot.cf.active_split("tax-api-staging") == [(old, 100.0)]
    bot.wait_for(
        lambda: "is rolling tax-api/staging back to" in channel_text(bot), what="announcement"
    )
    assert old[:8] in channel_text(bot)
    bot.idle()
    assert len(posts(bot, "tax-api-staging")) == 2


def test_rollback_to_a_named_version(bot: BotHarness) -> None:
    earlier = bot.cf.version_id("tax-api-staging", "v1.4.1")  # at 100% before R-1
    deploy_staging(bot)

    bot.command("rollback tax-api in staging to v1.4.1")

    rollback = ended(bot, 2)
    assert rollback.state is State.SUCCEEDED and rollback.version_id == earlier
    assert posts(bot, "tax-api-staging")[1:] == [at_100(earlier)]
    assert bot.cf.active_split("tax-api-staging") == [(earlier, 100.0)]


def test_a_rollback_only_goes_back_to_a_version_that_ran_there(bot: BotHarness) -> None:
    never_live = bot.cf.version_id("tax-api-staging", "v1.4.0")  # uploaded, never deployed
    deploy_staging(bot)

    bot.command(f"rollback tax-api in staging to {never_live}")
    bot.wait_for(lambda: "never ran" in ephemeral_text(bot, "U0CAROL"), what="refusal")
    text = ephemeral_text(bot, "U0CAROL")
    assert "never ran in staging; deploy it instead" in text
    bot.idle()
    assert bot.release(2) is None
    assert posts(bot, "tax-api-staging")[1:] == []  # only R-1's own deployment


class TestReasonRequired:
    @pytest.fixture
    def bot_config(self) -> dict[str, Any]:
        data = config_data()
        data["policies"]["production"]["rollback_requires_reason"] = True
        return data

    def test_production_rollback_needs_a_reason(self, bot: BotHarness) -> None:
        oldest = bot.cf.version_id("tax-api", "v1.4.0")
        # v1.4.0 served production before v1.4.1 (Cloudflare's deployment history says so)
        bot.cf.deploy_direct("tax-api", oldest)
        bot.cf.deploy_direct("tax-api", bot.cf.version_id("tax-api", "v1.4.1"))

        bot.command("rollback tax-api in production to v1.4.0")
        refused = bot.wait_for(lambda: ephemeral_text(bot, "U0CAROL"), what="the refusal")
        assert "needs a reason" in refused and "--reason" in refused
        bot.idle()
        assert posts(bot, "tax-api") == [] and bot.release(1) is None

        bot.command('rollback tax-api in production to v1.4.0 --reason "receipts fail to load"')

        rollback = ended(bot, 1)
        assert rollback.state is State.SUCCEEDED
        assert rollback.reason == "receipts fail to load"
        assert posts(bot, "tax-api") == [at_100(oldest)]
        assert "receipts fail to load" in channel_text(bot)
        requested = next(e for e in bot.audit(1) if e.action == "release.requested")
        assert requested.detail["reason"] == "receipts fail to load"


def test_a_refusal_after_a_secret_change_is_explained_in_words(bot: BotHarness) -> None:
    deploy_staging(bot)
    secret_version = bot.cf.mark_secret_changed("tax-api-staging", redeploy=True)

    bot.command("rollback tax-api in staging")

    rollback = ended(bot, 2)
    assert rollback.state is State.FAILED
    assert "secrets changed" in rollback.outcome and "10220" in rollback.outcome
    assert "forced deployment" in rollback.outcome
    # nothing changed on Cloudflare: the version made by the secret change still serves
    assert bot.cf.active_split("tax-api-staging") == [(secret_version, 100.0)]
    refused = [p for p in bot.cf.deployment_posts if p["script"] == "tax-api-staging"][1:]
    assert len(refused) == 1 and not refused[0]["force"]
    bot.wait_for(lambda: "secrets changed" in channel_text(bot), what="the channel is told")


def test_a_rollback_across_a_durable_object_migration_is_refused_in_words(
    bot: BotHarness,
) -> None:
    before = bot.cf.version_id("tax-api-staging", "v1.4.1")
    migrated = bot.cf.upload_version("tax-api-staging", tag="v1.5.0", migration_tag="v2")
    deploy_staging(bot, "v1.5.0")

    bot.command("rollback tax-api in staging")

    rollback = ended(bot, 2)
    assert rollback.state is State.FAILED
    assert rollback.version_id == before
    assert "Durable Object migration" in rollback.outcome
    assert "cannot be rolled back across a migration" in rollback.outcome
    assert bot.cf.active_split("tax-api-staging") == [(migrated, 100.0)]


def test_a_rollback_to_a_version_binding_a_deleted_namespace_is_refused_in_words(
    bot: BotHarness,
) -> None:
    namespace = "0f2ac74b498b48028cb68387c421e279"
    cache = {"type": "kv_namespace", "name": "CACHE", "id": namespace}
    bot.cf.upload_version("tax-api-staging", tag="v1.4.3", bindings=[cache])
    deploy_staging(bot, "v1.4.3")
    bot.command("deploy tax-api v1.4.2 to staging")
    assert ended(bot, 2).state is State.SUCCEEDED
    bot.cf.delete_resource(namespace)

    bot.command("rollback tax-api in staging")

    rollback = ended(bot, 3)
    assert rollback.state is State.FAILED
    assert "binds a resource" in rollback.outcome and "binding CACHE" in rollback.outcome
    current = bot.cf.version_id("tax-api-staging", "v1.4.2")
    assert bot.cf.active_split("tax-api-staging") == [(current, 100.0)]


class TestRollbackInFlight:
    @pytest.fixture
    def bot_config(self) -> dict[str, Any]:
        return config_data(bake="3s")

    def test_a_rollback_during_a_production_rollout_rolls_that_release_back(
        self, bot: BotHarness
    ) -> None:
        new = bot.cf.version_id("tax-api", "v1.4.2")
        stable = bot.cf.version_id("tax-api", "v1.4.1")
        bot.cf.set_traffic("tax-api", 2000)
        bot.command("deploy tax-api v1.4.2 to production")
        bot.wait_for(lambda: (c := bot.card("R-1")) and "Approve" in str(c.blocks))
        bot.click("Approve", "R-1", user="U0ALICE")
        bot.wait_for(lambda: "1 of 2" in str(bot.card("R-1").blocks))
        bot.click("Approve", "R-1", user="U0BOB")
        bot.wait_for(
            lambda: (r := bot.release(1)) and r.state is State.VERIFYING, what="10% baking"
        )

        bot.command('rollback tax-api in production --reason "checkout errors"', user="U0ALICE")

        final = ended(bot, 1)
        assert final.state is State.ROLLED_BACK
        # plain data in the release; the person is kept apart from the words
        assert final.outcome == "rolled back on request: checkout errors"
        assert final.ended_by == "U0ALICE"
        assert posts(bot, "tax-api") == [
            [{"version_id": new, "percentage": 10}, {"version_id": stable, "percentage": 90}],
            at_100(stable),
        ]
        assert bot.cf.active_split("tax-api") == [(stable, 100.0)]
        assert bot.release(2) is None  # no rollback release of its own
        rolled = next(e for e in bot.audit(1) if e.action == "release.rolled_back")
        assert rolled.actor == "U0ALICE" and rolled.detail["to_version_id"] == stable
        answer = bot.wait_for(lambda: ephemeral_text(bot, "U0ALICE"), what="the answer")
        assert "rolled back" in answer
