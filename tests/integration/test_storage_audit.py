"""The audit hash chain: it verifies when untouched, and tampering with SQL behind the bot's
back (editing, deleting, swapping records) is found at the right record, with the reason."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.engine.model import AuditEntry
from storage.audit import GENESIS, iter_audit, record_hash, verify_chain
from storage.db import create_engine, upgrade
from storage.repositories import SqlReleaseRepository
from storage.tables import audit_events

pytest_plugins = ["tests.fixtures.db"]

START = datetime(2026, 11, 26, 12, 0, 0, 1, tzinfo=UTC)
# Every column except seq, which stays put when rows' contents are swapped.
CONTENT = [c.name for c in audit_events.columns if c.name != "seq"]


@pytest.fixture
async def chain(repo: SqlReleaseRepository, engine: AsyncEngine) -> AsyncEngine:
    """Six records, written in three transactions."""
    for batch in range(3):
        await repo.append_audit(
            [
                AuditEntry(
                    actor="U0ALICE",
                    action=f"lock.step{batch}.{n}",
                    at=START + timedelta(minutes=2 * batch + n),
                    service="tax-api",
                    environment="production",
                    detail={"reason": "quarter close", "n": n, "ünïcode": "€"},
                )
                for n in range(2)
            ]
        )
    return engine


async def _sql(engine: AsyncEngine, statement: str, **params: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(statement), params)


async def test_an_empty_trail_verifies(engine: AsyncEngine):
    report = await verify_chain(engine)
    assert report.ok and report.checked == 0 and str(report) == "audit chain OK: no records yet"


async def test_an_untouched_chain_verifies_and_is_recomputable_by_an_auditor(chain):
    report = await verify_chain(chain, batch_size=4)  # more than one batch
    assert report.ok and report.checked == 6 and report.last_seq == 6
    # plain SHA-256 records: intact links, but nothing a key vouches for
    assert not report.authenticated
    assert str(report).startswith("audit chain links OK, authenticity not checked: 6 records")

    rows = [r async for r in iter_audit(chain, batch_size=4)]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0]["prev_hash"] == GENESIS and rows[1]["prev_hash"] == rows[0]["hash"]
    assert rows[0]["detail"] == {"n": 0, "reason": "quarter close", "ünïcode": "€"}
    # The documented recipe, by hand: sorted keys, no whitespace, ISO UTC, every column but hash.
    first = {k: v for k, v in rows[0].items() if k not in ("hash", "key_id")}
    first["at"] = "2026-11-26T12:00:00.000001+00:00"
    first["detail"] = '{"n":0,"reason":"quarter close","ünïcode":"€"}'
    text = json.dumps(first, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(text.encode()).hexdigest() == rows[0]["hash"]
    assert rows[0]["at"] == START


async def test_export_since_a_time(chain):
    rows = [r async for r in iter_audit(chain, since=START + timedelta(minutes=4))]
    assert [r["seq"] for r in rows] == [5, 6]


async def test_an_edited_column_is_found(chain):
    await _sql(chain, "UPDATE audit_events SET actor = 'U0MALLORY' WHERE seq = 4")
    report = await verify_chain(chain)
    assert not report.ok
    assert (report.broken_seq, report.problem, report.last_seq) == (4, "edited", 3)
    assert str(report) == (
        "audit chain BROKEN at record 4: record 4 was edited: its contents no longer match its hash"
    )


@pytest.mark.parametrize("column", ["at", "detail", "prev_hash", "hash", "release_key"])
async def test_every_column_is_covered(chain, column: str):
    value = {
        "at": START + timedelta(days=1),
        "detail": '{"n":0,"reason":"quarter close ","ünïcode":"€"}',
        "prev_hash": "f" * 64,
        "hash": "e" * 64,
        "release_key": "R-9",
    }[column]
    if column == "at":
        async with chain.begin() as conn:
            await conn.execute(
                sa.update(audit_events).where(audit_events.c.seq == 2).values(at=value)
            )
    else:
        await _sql(chain, f"UPDATE audit_events SET {column} = :v WHERE seq = 2", v=value)
    report = await verify_chain(chain)
    assert (report.ok, report.broken_seq) == (False, 2)


async def test_a_deleted_record_is_found(chain):
    await _sql(chain, "DELETE FROM audit_events WHERE seq = 3")
    report = await verify_chain(chain)
    assert (report.broken_seq, report.problem, report.last_seq) == (3, "deleted", 2)
    assert "record 3 is missing (deleted); the chain jumps from 2 to 4" in str(report)


async def test_deleted_first_records_are_found(chain):
    await _sql(chain, "DELETE FROM audit_events WHERE seq <= 2")
    report = await verify_chain(chain)
    assert (report.broken_seq, report.problem) == (1, "deleted")
    assert "records 1 to 2 are missing" in str(report)


async def test_a_deleted_and_renumbered_record_is_found(chain):
    await _sql(chain, "DELETE FROM audit_events WHERE seq = 3")
    for seq in (4, 5, 6):
        await _sql(
            chain, "UPDATE audit_events SET seq = :new WHERE seq = :old", new=seq - 1, old=seq
        )
    report = await verify_chain(chain)
    assert (report.broken_seq, report.problem) == (3, "moved")
    assert "record 3 holds the record written as 4" in str(report)


@pytest.mark.parametrize(("a", "b"), [(2, 3), (2, 5)])
async def test_swapped_records_are_found(chain, a: int, b: int):
    async with chain.begin() as conn:
        rows = {
            r["seq"]: dict(r)
            for r in (
                await conn.execute(sa.select(audit_events).where(audit_events.c.seq.in_([a, b])))
            ).mappings()
        }
        for seq, other in ((a, b), (b, a)):
            content = {k: rows[other][k] for k in CONTENT}
            await conn.execute(
                sa.update(audit_events).where(audit_events.c.seq == seq).values(**content)
            )
    report = await verify_chain(chain)
    assert (report.broken_seq, report.problem) == (a, "moved")
    assert f"record {a} holds the record written as {b}" in str(report)


async def test_a_rehashed_forgery_is_found_at_the_replaced_record(chain):
    # A careful forger edits record 3 and recomputes its hash: record 4 still points at the
    # original record 3.
    async with chain.begin() as conn:
        row = (
            await conn.execute(sa.select(audit_events).where(audit_events.c.seq == 3))
        ).mappings()
        forged = {**dict(row.one()), "actor": "U0MALLORY"}
        forged["hash"] = record_hash(forged)
        await conn.execute(
            sa.update(audit_events)
            .where(audit_events.c.seq == 3)
            .values(actor=forged["actor"], hash=forged["hash"])
        )
    report = await verify_chain(chain)
    assert (report.broken_seq, report.problem, report.last_seq) == (3, "replaced", 2)
    assert "record 3 was replaced" in str(report)


async def test_an_unreadable_time_is_reported_not_raised(sqlite_url: str):
    # SQLite stores whatever text it is given; PostgreSQL would refuse it.
    upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        await SqlReleaseRepository(engine).append_audit([AuditEntry("U1", "lock.added", START)])
        await _sql(engine, "UPDATE audit_events SET at = 'yesterday' WHERE seq = 1")
        report = await verify_chain(engine)
    finally:
        await engine.dispose()
    assert (report.broken_seq, report.problem) == (1, "edited")
