"""300 read commands in 10 s from three people while a rollout runs, end to end: every request
is acked within 3 s, the people over their share get a polite answer on the ack, what reaches
Cloudflare stays within the call budget, and the rollout's steps are not delayed."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.engine.states import State
from tests.fixtures.bot import BotHarness, config_data
from tests.fixtures.db import SQLITE_ONLY

BAKE = 3  # seconds at each step
STORM = 300
SECONDS = 10.0
PEOPLE = ("U0ALICE", "U0BOB", "U0CAROL")
QUESTIONS = (
    "versions tax-api production",
    "status",
    "status tax-api production",
    "history tax-api",
)


@pytest.fixture
def bot_config() -> dict[str, Any]:
    return config_data(bake=f"{BAKE}s")


def api_calls(bot: BotHarness, since: datetime, until: datetime) -> list[dict[str, Any]]:
    return [
        r
        for r in list(bot.cf.requests_log)
        if "/accounts/" in r["path"] and since <= datetime.fromisoformat(r["at"]) <= until
    ]


@SQLITE_ONLY
def test_a_read_storm_during_a_rollout(bot: BotHarness) -> None:
    bot.cf.set_traffic("tax-api", 2000)
    bot.command("deploy tax-api v1.4.2 to production")
    bot.wait_for(lambda: (c := bot.card("R-1")) and "Approve" in str(c.blocks), what="card")
    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-1").blocks), what="first approval")
    bot.click("Approve", "R-1", user="U0BOB")
    bot.wait_for(
        lambda: (r := bot.release(1)) and r.state is State.VERIFYING, what="the first step bakes"
    )

    def ask(n: int, at: float) -> tuple[float, httpx.Response]:
        time.sleep(max(0.0, at - time.monotonic()))
        response = bot.command(QUESTIONS[n % len(QUESTIONS)], user=PEOPLE[n % len(PEOPLE)])
        return response.elapsed.total_seconds(), response

    started = datetime.now(UTC)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda n: ask(n, t0 + n * SECONDS / STORM), range(STORM)))
    ended = datetime.now(UTC)

    assert all(r.status_code == 200 for _, r in results)
    slowest = max(seconds for seconds, _ in results)
    assert slowest < 3.0, f"slowest ack {slowest:.2f} s"
    polite = [r for _, r in results if "asked a lot in a short time" in r.text]
    # ten a person per 30 s run; the other 270 get the polite answer on the ack itself
    assert len(polite) == STORM - 3 * 10

    final = bot.wait_for(
        lambda: (r := bot.release(1)) and r.state.is_terminal and r, timeout=60, what="the end"
    )
    assert final.state is State.SUCCEEDED, final.outcome
    calls = api_calls(bot, started, ended)
    # the call budget (2 a second, 20 at once) bounds every call in the process: at most
    # 20 + 2 × 11 over the storm's ~11 s, the rollout's own calls included
    assert len(calls) <= 20 + 2 * 11, len(calls)
    # the steps were on time: each deployed within 1 s of the previous step's bake ending
    steps = final.steps
    for before, after in itertools.pairwise(steps):
        assert before.deployed_at is not None and after.deployed_at is not None
        late = (after.deployed_at - before.deployed_at).total_seconds() - BAKE
        assert late <= 1.0, f"step {after.percent}% was {late:.2f} s late"
