"""Checkpoints outside the database, on SQLite and PostgreSQL: cutting records off the end and
rewriting the whole trail both leave a chain that verifies on its own, and both are caught by
``audit verify --checkpoints FILE`` (or ``--from-slack``), naming the checkpoint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from slack_sdk import WebClient
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from bot.cli import VERIFY_BROKEN, VERIFY_OK, VERIFY_UNAUTHENTICATED, app
from bot.dev.slack_standin import Message, StandinState
from bot.engine.model import AuditEntry
from storage.audit import record_hash
from storage.audit_keys import AuditKey
from storage.checkpoints import checkpoint_line, make_checkpoint, parse_checkpoint
from storage.db import create_engine, sync_url
from storage.repositories import SqlReleaseRepository
from storage.tables import audit_events, slack_outbox
from tests.fixtures.bot import AUDIT, BOT_TOKEN, config_data
from tests.fixtures.processes import write_config
from tests.fixtures.servers import ServerThread

pytest_plugins = ["tests.fixtures.db"]

START = datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=UTC)
KEY_TEXT = "checkpoint-audit-key-7e1d3a9c5b"
KEY = AuditKey(KEY_TEXT.encode())


def _write(url: str, count: int) -> None:
    async def write() -> None:
        engine = create_engine(url)
        try:
            repo = SqlReleaseRepository(engine, audit_key=KEY)
            for n in range(count):
                entry = AuditEntry(
                    actor="U0ALICE",
                    action=f"lock.set.{n}",
                    at=START + timedelta(minutes=n),
                    service="tax-api",
                    environment="production",
                )
                await repo.append_audit([entry])
        finally:
            await engine.dispose()

    asyncio.run(write())


def _sql(url: str, statement: Any, **params: Any) -> list[Any]:
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(statement, params)
            return [dict(r) for r in result.mappings()] if result.returns_rows else []
    finally:
        engine.dispose()


def _checkpoints(url: str, seqs: list[int]) -> list[str]:
    """The checkpoint lines the bot would have posted after records ``seqs``."""
    rows = _sql(url, sa.select(audit_events).where(audit_events.c.seq.in_(seqs)))
    return [
        checkpoint_line(make_checkpoint(r["seq"], r["hash"], START + timedelta(hours=1), KEY))
        for r in sorted(rows, key=lambda r: r["seq"])
    ]


def _export(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "checkpoints.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def _verify(url: str, *args: str, **env: str) -> Any:
    base = {"DATABASE_URL": url, "RELEASEBOT_AUDIT_KEY": KEY_TEXT}
    return CliRunner().invoke(app, ["audit", "verify", *args], env={**base, **env})


def test_an_intact_trail_matches_its_checkpoints(db_url: str, tmp_path: Path) -> None:
    _write(db_url, 12)
    lines = _checkpoints(db_url, [5, 10])
    assert parse_checkpoint(lines[0]) is not None and "<" not in "".join(lines)
    result = _verify(db_url, "--checkpoints", _export(tmp_path, lines))
    assert result.exit_code == VERIFY_OK, result.output
    assert "audit chain OK: 12 records" in result.output
    assert "audit checkpoints OK: 2 match the stored trail" in result.output


def test_the_last_five_records_deleted_fails_naming_the_checkpoint(
    db_url: str, tmp_path: Path
) -> None:
    _write(db_url, 12)
    export = _export(tmp_path, _checkpoints(db_url, [5, 10]))
    _sql(db_url, sa.delete(audit_events).where(audit_events.c.seq > 7))
    alone = _verify(db_url)
    assert alone.exit_code == VERIFY_OK  # the shorter chain is valid on its own
    result = _verify(db_url, "--checkpoints", export)
    assert result.exit_code == VERIFY_BROKEN, result.output
    assert (
        "audit checkpoints BROKEN at the checkpoint of seq 10 (2026-12-03T10:00:00.123456+00:00): "
        "record 10 is no longer stored: the trail ends at seq 7"
    ) in result.output


def test_a_full_rewrite_fails_naming_the_first_checkpoint(db_url: str, tmp_path: Path) -> None:
    _write(db_url, 12)
    export = _export(tmp_path, _checkpoints(db_url, [5, 10]))
    # The attacker rewrites every record under a key of their own, and says so in the
    # environment: the chain verifies, the checkpoints (signed with the real key) do not.
    theirs_text = "attacker-own-key-00112233445566"
    theirs = AuditKey(theirs_text.encode())
    rows = _sql(db_url, sa.select(audit_events).order_by(audit_events.c.seq))
    prev = "0" * 64
    for row in rows:
        row["actor"] = "U0MALLORY"
        row["key_id"], row["prev_hash"] = theirs.key_id, prev
        row["hash"] = prev = record_hash(row, theirs)
        values = {k: v for k, v in row.items() if k != "seq"}
        _sql(db_url, sa.update(audit_events).where(audit_events.c.seq == row["seq"]).values(values))
    chain_only = _verify(db_url, RELEASEBOT_AUDIT_KEY=theirs_text)
    assert chain_only.exit_code == VERIFY_OK, chain_only.output
    result = _verify(db_url, "--checkpoints", export, RELEASEBOT_AUDIT_KEYS=theirs_text)
    assert result.exit_code == VERIFY_BROKEN, result.output
    assert "BROKEN at the checkpoint of seq 5" in result.output
    assert "record 5 now has a different hash: the trail was rewritten" in result.output


def test_records_relabelled_with_an_unknown_key_id_and_edited_are_caught(
    db_url: str, tmp_path: Path
) -> None:
    """Without the key, the attacker keeps every hash and link but names a key id nobody
    gives, so only the links would be checked, and edits the records freely."""
    _write(db_url, 12)
    export = _export(tmp_path, _checkpoints(db_url, [5, 10]))
    _sql(db_url, sa.update(audit_events).values(key_id="deadbeef", actor="U0MALLORY"))
    result = _verify(db_url, "--checkpoints", export)
    assert result.exit_code == VERIFY_BROKEN, result.output
    assert "BROKEN at the checkpoint of seq 5" in result.output
    assert "record 5 is keyed under key id deadbeef, not given" in result.output

    # the same for a stretch in the middle: the chain alone names it
    _sql(db_url, sa.delete(audit_events))
    _write(db_url, 12)
    _sql(
        db_url,
        sa.update(audit_events)
        .where(audit_events.c.seq.between(4, 6))
        .values(key_id="deadbeef", actor="U0MALLORY"),
    )
    alone = _verify(db_url)
    assert alone.exit_code == VERIFY_BROKEN, alone.output
    assert (
        "audit chain BROKEN at record 4: records 4 to 6 are keyed under key id deadbeef, "
        "not given, between records under the keys given"
    ) in alone.output


def test_a_forged_or_unkeyed_checkpoint_is_not_trusted(db_url: str, tmp_path: Path) -> None:
    _write(db_url, 6)
    line = _checkpoints(db_url, [6])[0]
    forged = line.replace('"seq":6', '"seq":5')
    result = _verify(db_url, "--checkpoints", _export(tmp_path, [forged]))
    assert result.exit_code == VERIFY_BROKEN, result.output
    assert "its signature does not match" in result.output
    # Without the key the checkpoints cannot be checked, and the exit code says so.
    unchecked = _verify(db_url, "--checkpoints", _export(tmp_path, [line]), RELEASEBOT_AUDIT_KEY="")
    assert unchecked.exit_code == VERIFY_UNAUTHENTICATED, unchecked.output
    assert "1 signed under key ids not given (" in unchecked.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"not": "a checkpoint"}\n')
    wrong = _verify(db_url, "--checkpoints", str(bad))
    assert wrong.exit_code == 2 and f"{bad}:1: not an audit checkpoint" in wrong.output


def test_checkpoints_read_from_the_audit_channel(
    db_url: str, tmp_path: Path, slack_standin: tuple[ServerThread, StandinState]
) -> None:
    server, state = slack_standin
    _write(db_url, 12)
    client = WebClient(token=BOT_TOKEN, base_url=f"{server.url}/api/")
    for n, line in enumerate(_checkpoints(db_url, [4, 8, 12])):
        client.chat_postMessage(channel=AUDIT, text=f"#{n} · lock.set · by someone")
        client.chat_postMessage(channel=AUDIT, text=f"audit checkpoint {line}")
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": f"{server.url}/api/",
        "RELEASEBOT_CONFIG": str(write_config(tmp_path / "releasebot.yml", config_data())),
    }
    intact = _verify(db_url, "--from-slack", **env)
    assert intact.exit_code == VERIFY_OK, intact.output
    assert "audit checkpoints OK: 3 match the stored trail" in intact.output
    assert any(name == "conversations.history" for name, _ in state.calls)
    _sql(db_url, sa.delete(audit_events).where(audit_events.c.seq > 7))
    cut = _verify(db_url, "--from-slack", **env)
    assert cut.exit_code == VERIFY_BROKEN, cut.output
    assert "BROKEN at the checkpoint of seq 8" in cut.output


def test_the_history_standin_pages_newest_first(
    slack_standin: tuple[ServerThread, StandinState],
) -> None:
    server, _ = slack_standin
    client = WebClient(token=BOT_TOKEN, base_url=f"{server.url}/api/")
    for n in range(5):
        client.chat_postMessage(channel=AUDIT, text=f"m{n}")
    first = client.conversations_history(channel=AUDIT, limit=3)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3", "m2"] and first["has_more"]
    cursor = first["response_metadata"]["next_cursor"]
    rest = client.conversations_history(channel=AUDIT, limit=3, cursor=cursor)
    assert [m["text"] for m in rest["messages"]] == ["m1", "m0"] and not rest["has_more"]


async def test_the_bot_posts_a_checkpoint_every_n_records_every_t_and_at_shutdown(
    db_url: str, tmp_path: Path, slack_standin: tuple[ServerThread, StandinState]
) -> None:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.config import AuditCheckpoints
    from bot.slack.audit_checkpoints import AuditCheckpointer
    from bot.slack.audit_poster import AuditPoster
    from storage.outbox import SqlOutbox
    from tests.fakes import FakeClock

    server, state = slack_standin
    clock = FakeClock()
    engine = create_engine(db_url)
    repo = SqlReleaseRepository(engine, audit_key=KEY)
    client = AsyncWebClient(token=BOT_TOKEN, base_url=f"{server.url}/api/")
    rules = AuditCheckpoints.model_validate({"every_records": 3, "every": "15m"})
    poster = AuditPoster(client, AUDIT, SqlOutbox(engine), repo, clock)
    checkpointer = AuditCheckpointer(
        poster.outbox, poster.retry_due, AUDIT, engine, KEY, rules, clock
    )

    async def add(count: int) -> None:
        for n in range(count):
            entry = AuditEntry(actor="U0ALICE", action=f"lock.set.{n}", at=clock.now())
            await repo.append_audit([entry])

    def posted() -> list[int]:
        found = [parse_checkpoint(m.text) for m in state.channel_messages(AUDIT)]
        return [cp["seq"] for cp in found if cp is not None]

    try:
        await add(2)
        assert not await checkpointer.tick() and posted() == []  # 2 < 3, and not 15 min yet
        await add(2)
        assert await checkpointer.tick() and posted() == [4]  # 4 records: due by count
        await add(1)
        clock.advance(14 * 60)
        assert not await checkpointer.tick()
        clock.advance(60)
        assert await checkpointer.tick() and posted() == [4, 5]  # due by time
        clock.advance(3600)
        assert not await checkpointer.tick()  # nothing new: no checkpoint
        await add(1)
        assert await checkpointer.final() and posted() == [4, 5, 6]  # at shutdown
        assert not await checkpointer.final()
        # After a restart the count goes on from the last checkpoint the outbox holds.
        again = AuditCheckpointer(poster.outbox, poster.retry_due, AUDIT, engine, KEY, rules, clock)
        await add(2)
        assert not await again.tick() and posted() == [4, 5, 6]
        await add(1)
        assert await again.tick() and posted() == [4, 5, 6, 9]
        # Rows slipped into the outbox by someone with the database: one not signed with the
        # key, one (signed) past the trail's end. Neither stops the checkpoints.
        other_key = AuditKey(b"someone-else-entirely-0123456789")
        slipped = [
            make_checkpoint(seq=999_999, record_hash="0" * 64, at=clock.now(), key=other_key),
            make_checkpoint(seq=999_999, record_hash="0" * 64, at=clock.now(), key=KEY),
        ]
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(slack_outbox),
                [
                    {
                        "kind": "audit_checkpoint",
                        "channel": AUDIT,
                        "payload": {"items": [{"line": checkpoint_line(cp)}]},
                        "created_at": clock.now(),
                        "attempts": 1,
                        "sent_at": clock.now(),
                    }
                    for cp in slipped
                ],
            )
        await add(3)
        assert await again.tick() and posted() == [4, 5, 6, 9, 12]
        # Someone else in the channel posts a look-alike naming a record that is not stored.
        fake = make_checkpoint(seq=99, record_hash="0" * 64, at=clock.now(), key=KEY)
        state.messages.append(
            Message(
                AUDIT, state.next_ts(), "U0MALLORY", "audit checkpoint " + checkpoint_line(fake)
            )
        )
    finally:
        await engine.dispose()
    texts = [m.text for m in state.channel_messages(AUDIT)]
    assert all(t.startswith("audit checkpoint {") for t in texts)
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": f"{server.url}/api/",
        "RELEASEBOT_CONFIG": str(write_config(tmp_path / "releasebot.yml", config_data())),
    }
    # The CLI runs its own event loop: call it from a thread, as an operator's shell would.
    result = await asyncio.to_thread(_verify, db_url, "--from-slack", **env)
    assert result.exit_code == VERIFY_OK, result.output
    assert "audit checkpoints OK: 5 match the stored trail" in result.output
    assert "1 look-alike messages not posted by the bot were skipped" in result.output
