"""Secrets never leak: after a whole release — a staging deploy, and a production rollout with
two approvals — the tokens and the signing secret are in no log line (at DEBUG, from every
logger), no database row (the audit trail included), no Slack message or API call argument,
and nothing sent to Cloudflare but the Authorization header."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from bot.engine.states import State
from bot.logs import configure
from storage.db import sync_url
from tests.fixtures.bot import BOT_TOKEN, SIGNING_SECRET, BotHarness
from tests.fixtures.cloudflare import TEST_TOKEN

SECRETS = {"Slack bot token": BOT_TOKEN, "signing secret": SIGNING_SECRET, "CF token": TEST_TOKEN}
NOISY = ("httpx", "httpcore", "aiosqlite", "apscheduler.executors.default")


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything every logger says, at DEBUG, through the bot's own log configuration."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in NOISY})
    configure("DEBUG", "json", SECRETS.values())
    for name in NOISY:  # the bot quietens these; here they talk too
        logging.getLogger(name).setLevel(logging.DEBUG)
    sink = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(sink)
    try:
        yield sink
    finally:
        root.handlers, level, levels = saved[0], saved[1], saved[2]
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
        structlog.reset_defaults()


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def _release(bot: BotHarness, command: str, key: str, user: str = "U0CAROL") -> None:
    assert bot.command(command, user=user).status_code == 200
    bot.wait_for(lambda: bot.card(key), what=f"the card of {key}")


def _everything_in_the_database(url: str) -> str:
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    dump = []
    try:
        with engine.connect() as conn:
            for table in SQLModel.metadata.sorted_tables:
                for row in conn.execute(sa.select(table)).mappings():
                    dump.append(f"{table.name}: {json.dumps(dict(row), default=str)}")
    finally:
        engine.dispose()
    return "\n".join(dump)


def test_no_secret_leaves_the_bot(captured_logs: io.StringIO, bot: BotHarness) -> None:
    # A line that carries a secret on purpose: it must come out scrubbed.
    logging.getLogger("releasebot.test").warning("token is %s", BOT_TOKEN)
    structlog.get_logger("releasebot.test").warning("structured", token=SIGNING_SECRET)

    _release(bot, "deploy tax-api v1.4.2 to staging", "R-1")
    bot.cf.set_traffic("tax-api", 2000)
    _release(bot, "deploy tax-api v1.4.2 to production", "R-2")
    bot.wait_for(lambda: "Approve" in str(bot.card("R-2").blocks), what="approval buttons")
    bot.click("Approve", "R-2", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-2").blocks), what="one approval")
    bot.click("Approve", "R-2", user="U0BOB")
    final = bot.wait_for(
        lambda: (r := bot.release(2)) and r.state.is_terminal and r, timeout=30, what="R-2 ends"
    )
    assert final.state is State.SUCCEEDED, final.outcome
    assert bot.release(1).state is State.SUCCEEDED
    bot.command("status tax-api production", user="U0MALLORY")  # a refusal-free read too
    bot.wait_for(lambda: bot.ephemerals("U0MALLORY"), what="status")
    bot.idle()

    logs = captured_logs.getvalue()
    lines = logs.splitlines()
    assert len(lines) > 50, "the bot's logs were captured"
    assert "token is [redacted]" in logs
    assert '"token": "[redacted]"' in logs
    assert _leaks(logs) == []
    assert "Traceback" not in logs, "no exception while releasing"
    parsed = [json.loads(line) for line in lines]
    # Every line about the rollout's deployments says which release it was about.
    deploys = [p for p in parsed if p.get("path_template", "").endswith("/deployments")]
    posts = [p for p in deploys if p.get("http_method") == "POST"]
    assert len(posts) == 4 and {p.get("release_id") for p in posts} == {"R-1", "R-2"}

    assert _leaks(_everything_in_the_database(bot.rt.settings.database_url)) == []

    slack_said = json.dumps(bot.slack.calls) + json.dumps([m.as_dict() for m in bot.slack.messages])
    assert _leaks(slack_said) == []
    assert "Something went wrong" not in slack_said

    cloudflare_got: list[Any] = [bot.cf.requests_log, bot.cf.deployment_posts]
    assert len(bot.cf.requests_log) > 10 and len(bot.cf.deployment_posts) == 4
    assert _leaks(json.dumps(cloudflare_got, default=str)) == []
