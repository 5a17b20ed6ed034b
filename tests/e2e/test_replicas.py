"""Two replicas of ``releasebot run`` on one PostgreSQL database: Slack's requests spread over
both, every release rolls out once (each step posted once, each timer run once), and when the
replica driving a rollout is killed mid-bake the other one finishes it."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from bot.engine.states import State
from tests.fixtures.bot import config_data
from tests.fixtures.processes import (  # noqa: F401 (fixtures)
    BotProcess,
    World,
    world_fixture,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    # several replicas need PostgreSQL (SQLite is one machine's file)
    pytest.mark.parametrize("empty_db_url", ["postgres"], indirect=True),
]


@pytest.fixture
def world_config() -> dict[str, Any]:
    # bakes long enough that a loaded machine still looks in on one before it ends
    return config_data(bake="3s")


def posts(world: World, script: str) -> list[list[dict[str, Any]]]:
    return [p["body"]["versions"] for p in world.cf.deployment_posts if p["script"] == script]


def gradual(new: str, stable: str) -> list[list[dict[str, Any]]]:
    return [
        [{"version_id": new, "percentage": 10}, {"version_id": stable, "percentage": 90}],
        [{"version_id": new, "percentage": 50}, {"version_id": stable, "percentage": 50}],
        [{"version_id": new, "percentage": 100}],
    ]


def ask(world: World, via: BotProcess, text: str, key: str) -> None:
    via.command(text)
    world.wait_for(lambda: (c := world.card(key)) and "Approve" in str(c.blocks), what=key)


def approve(world: World, key: str, alice_via: BotProcess, bob_via: BotProcess) -> None:
    alice_via.post(world.click_body("Approve", key, "U0ALICE"))
    world.wait_for(lambda: "1 of 2" in str(world.card(key).blocks), what=f"{key} 1 of 2")
    bob_via.post(world.click_body("Approve", key, "U0BOB"))


def assert_ran_once(world: World, release_id: int, key: str) -> None:
    """One rollout: each step deployed and judged once, and every wake-up run and done."""
    actions = [e.action for e in world.audit(release_id)]
    assert actions.count("release.started") == 1
    assert actions.count("release.step_deployed") == 3
    assert actions.count("gate.passed") == 3
    assert actions.count("release.succeeded") == 1
    world.wait_for(
        lambda: all(t.fired_at for t in world.timers(release_id) if t.kind == "advance"),
        what=f"{key}'s timers done",
    )
    thread = world.thread(key)
    for pct in (10, 50, 100):
        assert len(re.findall(rf":white_check_mark: {pct}%: ", thread)) == 1, thread


def test_two_replicas_share_the_work_and_survive_losing_the_driver(world: World) -> None:
    for script in ("tax-api", "tax-web"):
        world.cf.set_traffic(script, 2000)
    a, b = world.spawn("a", wait=False), world.spawn("b", wait=False)
    a.wait_ready()
    b.wait_ready()

    # two releases at once, every request to either replica
    ask(world, a, "deploy tax-api v1.4.2 to production", "R-1")
    ask(world, b, "deploy tax-web v1.4.2 to production", "R-2")
    approve(world, "R-1", alice_via=b, bob_via=a)
    approve(world, "R-2", alice_via=a, bob_via=b)
    for release_id in (1, 2):
        final = world.wait_state(release_id, *_ENDS, timeout=30)
        assert final.state is State.SUCCEEDED, final.outcome
    for script in ("tax-api", "tax-web"):
        new, stable = world.cf.version_id(script, "v1.4.2"), world.cf.version_id(script, "v1.4.1")
        assert posts(world, script) == gradual(new, stable)
    assert_ran_once(world, 1, "R-1")
    assert_ran_once(world, 2, "R-2")

    # a third release, driven by the replica that took the last approval (a) ...
    newer = world.cf.upload_version("tax-api", tag="v1.4.3", message="Receipts export")
    current = world.cf.version_id("tax-api", "v1.4.2")
    ask(world, b, "deploy tax-api v1.4.3 to production", "R-3")
    approve(world, "R-3", alice_via=b, bob_via=a)

    def mid_bake() -> bool:
        # baking at 10 % or 50 % (on a loaded machine the first look may come after the 50 %
        # step): a step is still to come, and nobody holds its wake-up yet
        r = world.release(3)
        pending = [t for t in world.timers(3) if t.kind == "advance" and t.fired_at is None]
        waiting = bool(pending) and all(t.claimed_by is None for t in pending)
        baking = r is not None and r.state is State.VERIFYING and waiting
        return baking and len(posts(world, "tax-api")) in (4, 5)

    world.wait_for(mid_bake, what="R-3 baking at 10% or 50%")
    # ... which dies mid-bake; b takes the release over and finishes it
    a.kill()
    killed_at = time.monotonic()
    posted = len(posts(world, "tax-api"))
    world.wait_for(
        lambda: len(posts(world, "tax-api")) > posted, timeout=15, what="the next step, by b"
    )
    assert time.monotonic() - killed_at < 10
    final = world.wait_state(3, *_ENDS, timeout=30)

    assert final.state is State.SUCCEEDED, final.outcome
    assert posts(world, "tax-api")[3:] == gradual(newer, current)
    assert world.cf.active_split("tax-api") == [(newer, 100.0)]
    assert_ran_once(world, 3, "R-3")
    world.wait_for(lambda: "Succeeded" in str(world.card("R-3").blocks), what="R-3's card")
    report = world.verify_chain()
    assert report.ok, report
    assert b.alive


_ENDS = (State.SUCCEEDED, State.ROLLED_BACK, State.FAILED, State.CANCELLED, State.EXPIRED)
