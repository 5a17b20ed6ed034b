"""A Cloudflare blip on the real wiring: the deployments POST answers 500 three times, 429 with
Retry-After 5, then 503 for 20 s. The release waits it out — its card says until when — and
ends with one deployment. (About 45 s of wall time, as the backoff reaches 20 s during the
outage, so it runs on SQLite only; the same blip at every step of a rollout, and worse, runs
on virtual time in ``tests/unit/test_release_cloudflare_trouble.py``.)"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest

from bot.engine.states import State
from tests.fixtures.bot import BotHarness

DEPLOYMENTS = r"/workers/scripts/tax-api-staging/deployments$"


def post_answers(bot: BotHarness) -> list[tuple[datetime, int]]:
    return [
        (datetime.fromisoformat(r["at"]), r["status"])
        for r in list(bot.cf.requests_log)
        if r["method"] == "POST" and r["path"].endswith("/tax-api-staging/deployments")
    ]


@pytest.mark.parametrize("empty_db_url", ["sqlite"], indirect=True)
def test_a_blip_of_500s_a_429_and_20_s_of_503s_is_waited_out(bot: BotHarness) -> None:
    bot.cf.inject("POST", DEPLOYMENTS, 500, count=3)
    bot.cf.inject("POST", DEPLOYMENTS, 429, count=1, retry_after=5)
    outage = bot.cf.inject("POST", DEPLOYMENTS, 503, count=100_000)
    ended = threading.Event()

    def end_the_outage() -> None:
        # 20 s after the first 503 the API is well again
        while not any(status == 503 for _, status in post_answers(bot)):
            if ended.wait(0.05):
                return
        ended.wait(20)
        with bot.cf.lock:
            if outage in bot.cf.faults:
                bot.cf.faults.remove(outage)

    watcher = threading.Thread(target=end_the_outage, daemon=True)
    watcher.start()
    try:
        bot.command("deploy tax-api v1.4.2 to staging")
        shown: dict[str, Any] = {}

        def busy_on_the_card() -> bool:
            card = bot.card("R-1")
            if card is not None and "Cloudflare busy, retrying until <!date^" in str(card.blocks):
                shown["at"] = time.monotonic()
            return "at" in shown

        bot.wait_for(busy_on_the_card, timeout=10, what="the card says Cloudflare is busy")
        final = bot.wait_for(
            lambda: (r := bot.release(1)) and r.state.is_terminal and r,
            timeout=90,
            what="the end of R-1",
        )
    finally:
        ended.set()
        watcher.join(timeout=5)

    assert final.state is State.SUCCEEDED, final.outcome
    answers = post_answers(bot)
    statuses = [status for _, status in answers]
    assert statuses[:4] == [500, 500, 500, 429] and statuses[-1] == 200
    assert set(statuses[4:-1]) == {503}
    assert (answers[4][0] - answers[3][0]).total_seconds() >= 5  # Retry-After honoured
    assert (answers[-1][0] - answers[4][0]).total_seconds() >= 20
    # one accepted deployment for the release's one step
    assert len([p for p in bot.cf.deployment_posts if p["script"] == "tax-api-staging"]) == 1
    stable_card = str(bot.card("R-1").blocks)
    assert "Cloudflare busy" not in stable_card  # gone once the release moved on
