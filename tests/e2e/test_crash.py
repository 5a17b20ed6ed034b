"""Crash safety: ``releasebot run`` is killed with SIGKILL inside each phase of a gradual
rollout and started again on the same database. The release ends by itself (succeeded or
rolled back), Cloudflare always serves a valid split, and no step is deployed twice.

The Slack stand-in and the Cloudflare simulator live in the test process, so they see the
requests of both lives of the bot."""

from __future__ import annotations

from typing import Any

import pytest

from bot.engine.states import State
from storage.audit_queries import recent_audit
from tests.fixtures.bot import AUDIT, config_data
from tests.fixtures.processes import BotProcess, World, world_fixture  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

DEPLOYMENTS = r"/workers/scripts/tax-api/deployments$"
IN_FLIGHT_S = 3.0  # how long the simulator holds the deployment request being killed


def split(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    return [{"version_id": v, "percentage": p} for v, p in pairs]


def posts(world: World) -> list[list[dict[str, Any]]]:
    return [p["body"]["versions"] for p in world.cf.deployment_posts if p["script"] == "tax-api"]


def request_and_approve(world: World, bot: BotProcess) -> None:
    bot.command("deploy tax-api v1.4.2 to production")
    world.wait_for(lambda: (c := world.card("R-1")) and "Approve" in str(c.blocks), what="card")
    bot.post(world.click_body("Approve", "R-1", "U0ALICE"))
    world.wait_for(lambda: "1 of 2" in str(world.card("R-1").blocks), what="first approval")
    bot.post(world.click_body("Approve", "R-1", "U0BOB"))


def taken(world: World, fault: Any) -> bool:
    """The simulator has received the request the fault was waiting for."""
    with world.cf.lock:
        return fault not in world.cf.faults


def assert_valid_history(world: World) -> None:
    """Every split Cloudflare ever served: one or two versions summing to 100%."""
    for deployment in world.cf.script("tax-api").deployments:
        shares = [pct for _, pct in deployment.versions]
        assert 1 <= len(shares) <= 2 and sum(shares) == 100, deployment.versions
    final = world.cf.active_split("tax-api")
    assert len(final) == 1 and final[0][1] == 100.0, final


def assert_told(world: World, label: str) -> None:
    world.wait_for(lambda: label in str(world.card("R-1").blocks), what=f"the card says {label}")


@pytest.fixture
def world_config() -> dict[str, Any]:
    data = config_data(bake="1s")
    data["policies"]["production"]["rollout"]["steps"] = [50, 100]
    return data


def gradual(new: str, stable: str) -> list[list[dict[str, Any]]]:
    return [split((new, 50), (stable, 50)), split((new, 100))]


@pytest.fixture
def versions(world: World) -> tuple[str, str]:
    world.cf.set_traffic("tax-api", 2000)
    return world.cf.version_id("tax-api", "v1.4.2"), world.cf.version_id("tax-api", "v1.4.1")


def test_killed_while_a_step_is_posted_that_cloudflare_never_applied(
    world: World, versions: tuple[str, str]
) -> None:
    new, stable = versions
    bot = world.spawn()
    # the first step's request is held, then answered 503 without being carried out
    fault = world.cf.inject("POST", DEPLOYMENTS, 503, delay=IN_FLIGHT_S)
    request_and_approve(world, bot)
    world.wait_for(lambda: taken(world, fault), what="the 50% request in flight")
    assert world.release(1).state is State.DEPLOYING

    bot.kill()
    bot.restart()
    final = world.wait_state(1, State.SUCCEEDED, State.ROLLED_BACK, State.FAILED, timeout=40)

    assert final.state is State.SUCCEEDED, final.outcome
    assert posts(world) == gradual(new, stable)
    assert_valid_history(world)
    assert_told(world, "Succeeded")
    assert world.verify_chain().ok


def test_killed_after_cloudflare_applied_a_step_before_the_bot_heard(
    world: World, versions: tuple[str, str]
) -> None:
    new, stable = versions
    bot = world.spawn()
    # the 50% deployment is made, but its answer comes late: the bot dies waiting for it
    fault = world.cf.inject("POST", DEPLOYMENTS, None, delay=IN_FLIGHT_S, apply_first=True)
    request_and_approve(world, bot)
    world.wait_for(
        lambda: taken(world, fault) and len(world.cf.active_split("tax-api")) == 2,
        what="the 50% split live",
    )

    bot.kill()
    assert world.release(1).state is State.DEPLOYING  # the bot never recorded it
    bot.restart()
    final = world.wait_state(1, State.SUCCEEDED, State.ROLLED_BACK, State.FAILED, timeout=40)

    assert final.state is State.SUCCEEDED, final.outcome
    # the restart saw the 50% split live and did not post it again
    assert posts(world) == gradual(new, stable)
    assert final.steps[0].deployment_id == world.cf.script("tax-api").deployments[1].id
    assert_valid_history(world)
    assert_told(world, "Succeeded")
    assert world.verify_chain().ok


def test_killed_during_a_bake(world: World, versions: tuple[str, str]) -> None:
    new, stable = versions
    bot = world.spawn()
    request_and_approve(world, bot)

    def waiting_at_50() -> bool:
        r = world.release(1)
        if r is None or r.state is not State.VERIFYING or r.current_step != 0:
            return False
        # the bake's wake-up is stored, and nobody holds it yet
        pending = [t for t in world.timers(1) if t.kind == "advance" and t.fired_at is None]
        return bool(pending) and all(t.claimed_by is None for t in pending)

    world.wait_for(waiting_at_50, what="the 50% bake")
    bot.kill()
    assert world.cf.active_split("tax-api") == [(new, 50.0), (stable, 50.0)]
    bot.restart()
    final = world.wait_state(1, State.SUCCEEDED, State.ROLLED_BACK, State.FAILED, timeout=30)

    assert final.state is State.SUCCEEDED, final.outcome
    assert posts(world) == gradual(new, stable)
    assert_valid_history(world)
    assert_told(world, "Succeeded")
    # every wake-up of the release ran once and is done (none left to fire again)
    world.wait_for(
        lambda: all(t.fired_at for t in world.timers(1) if t.kind == "advance"),
        what="every advance timer fired",
    )
    assert world.verify_chain().ok


def test_killed_during_a_rollback(world: World, versions: tuple[str, str]) -> None:
    new, stable = versions
    world.cf.set_error_rate("tax-api", new, 0.3)
    bot = world.spawn()
    request_and_approve(world, bot)
    world.wait_for(lambda: world.release(1).state is State.VERIFYING, what="50% baking")
    # the next deployment is the rollback: Cloudflare makes it, the bot dies before it hears
    fault = world.cf.inject("POST", DEPLOYMENTS, None, delay=IN_FLIGHT_S, apply_first=True)
    world.wait_for(
        lambda: taken(world, fault) and world.cf.active_split("tax-api") == [(stable, 100.0)],
        what="the rollback deployment live",
    )

    bot.kill()
    assert world.release(1).state is State.VERIFYING
    bot.restart()
    final = world.wait_state(1, State.SUCCEEDED, State.ROLLED_BACK, State.FAILED, timeout=40)

    assert final.state is State.ROLLED_BACK, final.outcome
    assert "health gate failed" in final.outcome
    assert posts(world) == [split((new, 50), (stable, 50)), split((stable, 100))]
    assert_valid_history(world)
    assert world.cf.active_split("tax-api") == [(stable, 100.0)]
    assert_told(world, "Rolled back")
    actions = [e.action for e in world.audit(1)]
    assert actions.count("gate.failed") == 1 and actions.count("release.rolled_back") == 1
    world.wait_for(
        lambda: any("rolled back" in m.text and not m.blocks for m in world.cards()),
        what="the rollback announced",
    )
    assert world.verify_chain().ok


def test_killed_while_the_audit_channel_is_owed_records(
    world: World, versions: tuple[str, str]
) -> None:
    """The audit channel refuses every post while the release changes; the bot is killed with
    the records owed. They were stored with their changes (the outbox), so after the restart
    each is posted exactly once, in ``seq`` order."""
    world.slack.inject("chat.postMessage", 500, count=100_000, channel=AUDIT)
    bot = world.spawn()
    request_and_approve(world, bot)
    world.wait_state(1, State.VERIFYING, State.SUCCEEDED)
    assert world.slack.channel_messages(AUDIT) == []

    bot.kill()
    world.slack.faults.clear()
    bot.restart()
    final = world.wait_state(1, State.SUCCEEDED, State.ROLLED_BACK, State.FAILED, timeout=40)
    assert final.state is State.SUCCEEDED, final.outcome
    records = world._loop.call(recent_audit(world._engine, None, None, 500))
    stored = sorted(r["seq"] for r in records if r["release_key"] == "R-1")

    def posted() -> list[int]:
        lines = [ln for m in world.slack.channel_messages(AUDIT) for ln in m.text.splitlines()]
        return [int(ln.split(" · ")[0].removeprefix("#")) for ln in lines if "`R-1`" in ln]

    world.wait_for(lambda: set(stored) <= set(posted()), timeout=60, what="every record posted")
    assert posted() == sorted(stored), "each once, in order"
    assert world.verify_chain().ok
