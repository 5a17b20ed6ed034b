"""D1 migrations end to end over HTTP, against the simulator's real SQLite databases: a deploy
applies its pending files in order through D1's query API and records them in d1_migrations
as wrangler does; a failing file stops the release before any traffic moves; ``kill -9`` in
the middle of a file resumes from d1_migrations without applying anything twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.cloudflare.sim_state import EXAMPLE_DATABASE_ID
from bot.engine.states import State
from storage.db import upgrade
from tests.fixtures.bot import RELEASES, BotHarness, config_data
from tests.fixtures.processes import World, world_fixture  # noqa: F401 (fixture)

USERS = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n"
RECEIPTS = (
    "CREATE TABLE receipts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));\n"
    "CREATE TRIGGER receipts_owner BEFORE INSERT ON receipts BEGIN\n"
    "  SELECT RAISE(ABORT, 'no such user') WHERE NEW.user_id NOT IN (SELECT id FROM users);\n"
    "END;\n"
)


def with_migrations(data: dict[str, Any], repo: Path) -> dict[str, Any]:
    staging = data["services"]["tax-api"]["environments"]["staging"]
    staging["d1_database_id"] = EXAMPLE_DATABASE_ID
    staging["migrations"] = {
        "path": str(repo),
        "validate": [
            {"sql": "PRAGMA foreign_key_check", "expect": []},
            {"sql": "SELECT count(*) AS n FROM users WHERE email = ''", "expect": 0},
        ],
    }
    return data


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: what is under test is D1 and the stage, which the storage tests cover on
    both databases."""
    upgrade(sqlite_url)
    return sqlite_url


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "repo" / "migrations").mkdir(parents=True)
    return tmp_path / "repo"


@pytest.fixture
def bot_config(repo: Path) -> dict[str, Any]:
    return with_migrations(config_data(), repo)


def rows(cf: Any, sql: str) -> list[dict[str, Any]]:
    return cf.d1_query(EXAMPLE_DATABASE_ID, sql)[0]["results"]


def applied(cf: Any) -> list[str]:
    found = rows(cf, "SELECT name FROM sqlite_master WHERE name = 'd1_migrations'")
    if not found:
        return []
    return [r["name"] for r in rows(cf, "SELECT name FROM d1_migrations ORDER BY id")]


def test_migrations_apply_stop_on_a_failing_file_and_on_a_failing_check_then_restore(
    bot: BotHarness, repo: Path
) -> None:
    (repo / "migrations" / "0002_receipts.sql").write_text(RECEIPTS)
    (repo / "migrations" / "0001_users.sql").write_text(USERS)

    bot.command("deploy tax-api v1.4.2 to staging")
    bot.wait_for(lambda: bot.release(1) and bot.release(1).state.is_terminal, what="R-1 ends")
    first = bot.release(1)

    assert first.state is State.SUCCEEDED, first.outcome
    assert applied(bot.cf) == ["0001_users.sql", "0002_receipts.sql"]
    tables = {r["name"] for r in rows(bot.cf, "SELECT name FROM sqlite_master")}
    assert {"users", "receipts", "receipts_owner"} <= tables
    actions = [e.action for e in bot.audit(1)]
    assert actions.index("migration.applied") < actions.index("release.step_deployed")
    assert [e.detail["file"] for e in bot.audit(1) if e.action == "migration.applied"] == [
        "0001_users.sql",
        "0002_receipts.sql",
    ]
    assert "applied and validated" in str(bot.card("R-1").blocks)  # type: ignore[union-attr]

    posts_before = len(bot.cf.deployment_posts)
    (repo / "migrations" / "0003_broken.sql").write_text(
        "ALTER TABLE users ADD COLUMN plan TEXT;\nINSERT INTO receipts (user_id) VALUES (99);\n"
    )
    bot.command("deploy tax-api v1.4.1 to staging")
    bot.wait_for(lambda: bot.release(2) and bot.release(2).state.is_terminal, what="R-2 ends")
    second = bot.release(2)

    assert second.state is State.FAILED
    assert len(bot.cf.deployment_posts) == posts_before  # no traffic moved
    assert applied(bot.cf) == ["0001_users.sql", "0002_receipts.sql"]
    columns = [c["name"] for c in rows(bot.cf, "PRAGMA table_info(users)")]
    assert columns == ["id", "email"]  # nothing of the failed file was kept
    (failed,) = [e for e in bot.audit(2) if e.action == "migration.failed"]
    assert failed.detail["file"] == "0003_broken.sql"
    assert "no such user" in failed.detail["reason"]

    # a file that applies but leaves data the checks refuse: restore-db brings it all back
    (repo / "migrations" / "0003_broken.sql").unlink()
    (repo / "migrations" / "0004_blank.sql").write_text(
        "ALTER TABLE users ADD COLUMN plan TEXT;\nINSERT INTO users (email) VALUES ('');\n"
    )
    bot.command("deploy tax-api v1.4.2 to staging")
    bot.wait_for(lambda: bot.release(3) and bot.release(3).state.is_terminal, what="R-3 ends")
    third = bot.release(3)
    assert third.state is State.FAILED
    assert applied(bot.cf)[-1] == "0004_blank.sql"
    (invalid,) = [e for e in bot.audit(3) if e.action == "migrations.validation_failed"]
    assert [c["ok"] for c in invalid.detail["checks"]] == [True, False]
    hint = bot.wait_for(
        lambda: [
            m.text for m in bot.slack.channel_messages(RELEASES) if "restore-db R-3" in m.text
        ],
        what="the restore-db offer",
    )
    assert "10 restores per database every 10 minutes" in hint[-1]

    bot.command("restore-db R-3")
    bot.wait_for(lambda: (c := bot.card("R-4")) and "Approve" in str(c.blocks), what="R-4")
    bot.click("Approve", "R-4", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-4").blocks), what="first approval")
    bot.click("Approve", "R-4", user="U0BOB")
    bot.wait_for(lambda: bot.release(4) and bot.release(4).state.is_terminal, what="R-4 ends")

    assert bot.release(4).state is State.SUCCEEDED
    assert applied(bot.cf) == ["0001_users.sql", "0002_receipts.sql"]
    assert [c["name"] for c in rows(bot.cf, "PRAGMA table_info(users)")] == ["id", "email"]
    assert rows(bot.cf, "SELECT count(*) AS n FROM users") == [{"n": 0}]

    card = bot.wait_for(
        lambda: (c := bot.card("R-4")) and "Succeeded" in str(c.blocks) and c, what="R-4's card"
    )
    assert card.blocks[0]["text"]["text"] == (
        "R-4 · D1 restore of tax-api staging's database to the bookmark taken before R-3"
    )
    shown = str(card.blocks)
    assert "immediate" not in shown and "Strategy" not in shown and "→ staging" not in shown
    assert card.text.startswith("R-4 D1 restore of tax-api staging to the bookmark taken")
    thread = "\n".join(
        m.text for m in bot.slack.channel_messages(RELEASES) if m.thread_ts == card.ts
    )
    restored = bot.release(4).d1_bookmark
    assert f"D1 restored to bookmark `{restored}`" in thread
    assert thread.count(restored) == 1, thread  # named once
    told = "\n".join(m.text for m in bot.slack.messages)  # the requester's direct message
    assert "R-4 (D1 restore of tax-api staging to the bookmark taken before R-3)" in told
    bot.command("history tax-api staging")
    history = bot.wait_for(
        lambda: [m for m in bot.ephemerals("U0CAROL") if "History" in str(m.blocks)],
        what="history",
    )[-1]
    (r4,) = [line for line in str(history.blocks).split("\\n") if "*R-4*" in line]
    assert "D1 restore of staging to the bookmark taken before R-3" in r4, r4
    assert "v1.4.2" not in r4
    bot.command("status tax-api staging")
    status = bot.wait_for(
        lambda: [m for m in bot.ephemerals("U0CAROL") if "D1 restored by" in str(m.blocks)],
        what=f"status {[str(m.blocks)[:600] for m in bot.ephemerals('U0CAROL')[-1:]]}",
    )[-1]
    shown = str(status.blocks)
    assert "releasebot@example.com" not in shown
    assert "by <@U0CAROL> (R-1)" in shown  # R-1 made what is live; moved no traffic
    assert "D1 restored by <@U0CAROL> (R-4) <!date^" in shown

    bot.command("migrations tax-api staging")
    listing = bot.wait_for(
        lambda: [m.text for m in bot.ephemerals("U0CAROL") if "0004_blank.sql" in m.text],
        what="the migrations listing",
    )
    assert "0001_users.sql" in listing[-1] and "0004_blank.sql" in listing[-1]
    assert bot.cf.contract_violations == []


@pytest.fixture
def world_config(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "repo" / "migrations").mkdir(parents=True)
    return with_migrations(config_data(), tmp_path / "repo")


@pytest.mark.slow
def test_killed_while_a_migration_runs_resumes_without_applying_it_twice(
    world: World, tmp_path: Path
) -> None:
    folder = tmp_path / "repo" / "migrations"
    (folder / "0001_users.sql").write_text(USERS)
    (folder / "0002_receipts.sql").write_text(RECEIPTS)
    query = r"/d1/database/[^/]+/query$"
    bot = world.spawn()
    # at the deploy: the plan reads d1_migrations (absent) and the schema; the stage reads
    # d1_migrations again, creates it, then sends the first file, whose answer is held:
    # D1 has applied and recorded it when the bot dies
    for _ in range(4):
        world.cf.inject("POST", query, None)
    held = world.cf.inject("POST", query, None, delay=3.0, apply_first=True)

    bot.command("deploy tax-api v1.4.2 to staging")
    world.wait_for(lambda: applied(world.cf) == ["0001_users.sql"], what="the first file applied")
    with world.cf.lock:
        assert held not in world.cf.faults  # its answer is still on the way
    bot.kill()
    assert world.release(1).state is State.DEPLOYING  # type: ignore[union-attr]
    bot.restart()
    final = world.wait_state(1, State.SUCCEEDED, State.FAILED, timeout=40)

    assert final.state is State.SUCCEEDED, final.outcome
    assert applied(world.cf) == ["0001_users.sql", "0002_receipts.sql"]
    recorded = [
        (e.detail["file"], e.detail.get("found_in_d1_migrations", False))
        for e in world.audit(1)
        if e.action == "migration.applied"
    ]
    assert recorded == [("0001_users.sql", True), ("0002_receipts.sql", False)]
    assert world.verify_chain().ok
