"""A running bot posts signed audit checkpoints to the audit channel: after every N records and
at SIGTERM; an auditor then proves the trail against them with ``audit verify --from-slack``."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from bot.cli import VERIFY_OK, app
from storage.checkpoints import parse_checkpoint
from storage.db import sync_url
from storage.tables import audit_events
from tests.fixtures.bot import AUDIT, AUDIT_KEY, BOT_TOKEN, config_data
from tests.fixtures.processes import World, world_fixture  # noqa: F401 (fixture)

pytest_plugins = ["tests.fixtures.db"]


@pytest.fixture
def world_config() -> dict[str, Any]:
    data = config_data()
    data["slack"]["audit_checkpoints"] = {"every_records": 3, "every": "1h"}
    return data


def _checkpoint_seqs(world: World) -> list[int]:
    found = [parse_checkpoint(m.text) for m in world.slack.channel_messages(AUDIT)]
    return [cp["seq"] for cp in found if cp is not None]


def _head(url: str) -> int:
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.max(audit_events.c.seq))) or 0)
    finally:
        engine.dispose()


def test_checkpoints_every_n_records_and_at_sigterm(world: World) -> None:
    bot = world.spawn()
    # One command at a time: each is handled after its ack, so an unlock sent right behind its
    # lock could be handled first (and find nothing locked) on a busy machine.
    for n in range(2):
        for text in (f'lock tax-api staging --reason "part {n}"', "unlock tax-api staging"):
            before = _head(world.db_url)
            bot.command(text, user="U0ALICE")
            world.wait_for(lambda b=before: _head(world.db_url) > b, what=f"a record for {text}")
    assert _head(world.db_url) >= 4
    world.wait_for(lambda: _checkpoint_seqs(world), timeout=20, what="a checkpoint by count")
    assert _checkpoint_seqs(world)[0] >= 3
    bot.command('lock tax-api staging --reason "last"', user="U0ALICE")
    world.wait_for(lambda: _head(world.db_url) >= 5, what="one more record")
    bot.stop()  # SIGTERM
    head = _head(world.db_url)
    assert _checkpoint_seqs(world)[-1] == head, "the shutdown checkpoint names the head"
    env = {
        "DATABASE_URL": world.db_url,
        "RELEASEBOT_AUDIT_KEY": AUDIT_KEY,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": world.base_env["SLACK_API_URL"],
        "RELEASEBOT_CONFIG": str(world.config_path),
    }
    result = CliRunner().invoke(app, ["audit", "verify", "--from-slack"], env=env)
    assert result.exit_code == VERIFY_OK, result.output
    assert "audit checkpoints OK" in result.output
