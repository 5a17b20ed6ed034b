"""``releasebot audit verify`` and ``releasebot audit export`` as an operator (or an auditor)
runs them: with nothing but ``DATABASE_URL``, the bot stopped. Tampering done in SQL behind the
bot's back is named — which record, and why — in words, never as a traceback."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from bot.audit_export import COLUMNS, export
from bot.cli import app
from bot.engine.model import AuditEntry
from storage.audit import GENESIS, canonical_json, record_hash, verify_chain
from storage.db import create_engine, sync_url
from storage.repositories import SqlReleaseRepository
from storage.tables import audit_events

pytest_plugins = ["tests.fixtures.db"]

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 26, 12, 0, 0, 250000, tzinfo=UTC)
# Values the canonical JSON has to escape, in records that must still verify.
AWKWARD = 'quote " back \\ newline \n tab \t nul-ish \x01 del \x7f € 😀 \u2028 </script>'


def _cli(url: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["audit", *args], env={"DATABASE_URL": url})


def _sql(url: str, statement: str, **params: Any) -> None:
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        engine.dispose()


@pytest.fixture
def trail(db_url: str) -> str:
    """Ten records written by the bot's own writer, one with awkward text."""

    async def write() -> None:
        engine = create_engine(db_url)
        try:
            repo = SqlReleaseRepository(engine)
            for n in range(10):
                await repo.append_audit(
                    [
                        AuditEntry(
                            actor="U0ALICE" if n % 2 else "releasebot",
                            action=f"lock.set.{n}",
                            at=START + timedelta(minutes=n),
                            service="tax-api",
                            environment="production",
                            detail={"reason": AWKWARD if n == 4 else f"reason {n}", "n": n},
                        )
                    ]
                )
        finally:
            await engine.dispose()

    asyncio.run(write())
    return db_url


def _no_traceback(result: Any) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_intact_trail_verifies(trail: str) -> None:
    # a plain SHA-256 trail (written before the key): the links hold, but anyone who can
    # write the database could have recomputed them, so it is not called authentic
    result = _cli(trail, "verify")
    assert result.exit_code == 3, result.output
    assert result.output.startswith(
        "audit chain links OK, authenticity not checked: 10 records, last seq 10 (hash "
    )
    assert "no record is keyed" in result.output


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            "UPDATE audit_events SET actor = 'U0MALLORY' WHERE seq = 4",
            "audit chain BROKEN at record 4: record 4 was edited: its contents no longer match",
        ),
        (
            "UPDATE audit_events SET detail = replace(detail, 'reason 6', 'reason 9') "
            "WHERE seq = 7",
            "audit chain BROKEN at record 7: record 7 was edited",
        ),
        (
            "DELETE FROM audit_events WHERE seq = 6",
            "audit chain BROKEN at record 6: record 6 is missing (deleted); "
            "the chain jumps from 5 to 7",
        ),
    ],
    ids=["update-actor", "update-detail", "delete"],
)
def test_tampering_in_sql_is_named_in_words(trail: str, tamper: str, expected: str) -> None:
    _sql(trail, tamper)
    result = _cli(trail, "verify")
    assert result.exit_code == 1
    assert result.output.strip().startswith(expected), result.output
    _no_traceback(result)


def test_two_swapped_records_are_named(trail: str) -> None:
    content = [c.name for c in audit_events.columns if c.name != "seq"]
    engine = sa.create_engine(sync_url(trail), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            rows = {
                r["seq"]: dict(r)
                for r in conn.execute(
                    sa.select(audit_events).where(audit_events.c.seq.in_([3, 8]))
                ).mappings()
            }
            for seq, other in ((3, 8), (8, 3)):
                conn.execute(
                    sa.update(audit_events)
                    .where(audit_events.c.seq == seq)
                    .values(**{k: rows[other][k] for k in content})
                )
    finally:
        engine.dispose()
    result = _cli(trail, "verify")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "audit chain BROKEN at record 3: record 3 holds the record written as 8 "
        "(records were reordered, swapped or renumbered)"
    )
    _no_traceback(result)


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://auditor:pw-s3cret@127.0.0.1:1/releasebot"
    result = _cli(url, "verify")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("database unavailable (PostgreSQL at 127.0")
    assert "pw-s3cret" not in result.output
    _no_traceback(result)


def test_verify_runs_as_its_own_process_with_only_the_database(sqlite_url: str) -> None:
    # What an auditor runs with the bot stopped: no Slack, no Cloudflare, no config file.
    from storage.db import upgrade

    upgrade(sqlite_url)
    _bulk(sqlite_url, 50)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOUDFLARE_"))}
    env["DATABASE_URL"] = sqlite_url
    env.pop("RELEASEBOT_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", "verify"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr  # plain records: links only
    assert done.stdout.startswith("audit chain links OK, authenticity not checked: 50 records")
    _sql(sqlite_url, "UPDATE audit_events SET action = 'nothing.happened' WHERE seq = 17")
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", "verify"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout.startswith("audit chain BROKEN at record 17: record 17 was edited")
    assert "Traceback" not in done.stdout + done.stderr


def test_export_jsonl_and_csv_since_a_time(trail: str) -> None:
    since = (START + timedelta(minutes=6)).strftime("%Y-%m-%d %H:%M:%S")
    result = _cli(trail, "export", "--since", since)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [r["seq"] for r in records] == [7, 8, 9, 10]
    assert sorted(records[0]) == sorted(COLUMNS)
    assert records[0]["detail"] == {"n": 6, "reason": "reason 6"}

    result = _cli(trail, "export", "--format", "csv", "--since", since)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [int(r["seq"]) for r in rows] == [7, 8, 9, 10]
    assert json.loads(rows[0]["detail"]) == {"n": 6, "reason": "reason 6"}

    everything = _cli(trail, "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(everything.output)))
    assert len(rows) == 10
    assert json.loads(rows[4]["detail"])["reason"] == AWKWARD  # survives CSV quoting
    # What an auditor recomputes from the export alone matches the stored hashes.
    for row in rows:
        fields = {k: row[k] or None for k in COLUMNS}
        fields["seq"] = int(row["seq"])
        fields["at"] = datetime.fromisoformat(row["at"])
        assert record_hash(fields) == row["hash"]


def test_export_refuses_a_bad_format_and_time_in_words(trail: str) -> None:
    bad_format = _cli(trail, "export", "--format", "xml")
    assert bad_format.exit_code == 2
    # typer's choice error, in a box that wraps the line: compare the words only.
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", bad_format.output).split())
    assert "'xml' is not one of 'jsonl', 'csv'" in words
    bad_time = _cli(trail, "export", "--since", "the day before")
    assert bad_time.exit_code == 2 and bad_time.output.startswith("--since: ")
    _no_traceback(bad_format)
    _no_traceback(bad_time)


# -- at scale -----------------------------------------------------------------------------------


def _chained(count: int) -> Iterator[dict[str, Any]]:
    prev = GENESIS
    for i in range(count):
        row: dict[str, Any] = {
            "seq": i + 1,
            "at": START + timedelta(seconds=i),
            "actor": "releasebot",
            "action": "release.step_deployed",
            "release_id": i // 6 + 1,
            "release_key": f"R-{i // 6 + 1}",
            "service": "tax-api",
            "environment": "production",
            "before": "deploying",
            "after": "verifying",
            "detail": canonical_json({"deployment_id": f"{i:032x}", "step_percent": 10}),
            "prev_hash": prev,
        }
        row["hash"] = prev = record_hash(row)
        yield row


def _bulk(url: str, count: int) -> None:
    """``count`` chained records, inserted in bulk (the chain computed as the writer does)."""
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        rows = list(_chained(count))
        with engine.begin() as conn:
            for start in range(0, count, 5000):
                conn.execute(sa.insert(audit_events), rows[start : start + 5000])
    finally:
        engine.dispose()


class _Sink(io.TextIOBase):
    """Counts what is written and notes how many audit SELECTs had run at the first write."""

    def __init__(self, selects: list[str]) -> None:
        self.selects = selects
        self.first_write_after: int | None = None
        self.chars = 0
        self.lines = 0

    def write(self, text: str) -> int:
        if self.first_write_after is None and "\n" in text:
            self.first_write_after = len(self.selects)
        self.chars += len(text)
        self.lines += text.count("\n")
        return len(text)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_streams_in_batches_with_flat_memory(db_url: str, fmt: str) -> None:
    count = 20_000
    _bulk(db_url, count)
    selects: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "audit_events" in statement:
            selects.append(statement)

    def traced(since: datetime | None, sink: _Sink) -> tuple[int, int]:
        tracemalloc.start()
        try:
            written = asyncio.run(export(db_url, fmt, since, sink))
            return written, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # A first run of the last few records pays what any first run pays (imports, the
    # driver's and SQLAlchemy's caches); then the second half of the trail, then all of it.
    assert asyncio.run(export(db_url, fmt, START + timedelta(seconds=count - 10), _Sink([]))) == 10
    half, half_peak = traced(START + timedelta(seconds=count // 2), _Sink([]))
    assert half == count // 2
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    sink = _Sink(selects)
    try:
        written, peak = traced(None, sink)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)

    assert written == count
    assert sink.lines == count + (1 if fmt == "csv" else 0)
    # Output starts after the first batch, long before the whole trail is read...
    assert sink.first_write_after is not None and sink.first_write_after <= 2
    # ...which is read in keyset batches of 1000,
    assert count // 1000 <= len(selects) <= count // 1000 + 2
    # and memory is flat: twice the records (about 7 MB written) do not take much more than
    # half of them did (holding the rows would take twice as much, and more than was written).
    assert peak < half_peak * 1.5 and peak < sink.chars / 2, (peak, half_peak, sink.chars)


def test_verify_walks_a_large_trail_in_batches(db_url: str) -> None:
    _bulk(db_url, 20_000)

    async def check() -> Any:
        engine = create_engine(db_url)
        try:
            return await verify_chain(engine)
        finally:
            await engine.dispose()

    report = asyncio.run(check())
    assert report.ok and report.checked == 20_000 and report.last_seq == 20_000
    _sql(db_url, "UPDATE audit_events SET environment = 'staging' WHERE seq = 15001")
    report = asyncio.run(check())
    assert (report.ok, report.broken_seq, report.problem) == (False, 15001, "edited")


def test_the_quick_check_agrees_with_record_hash_on_awkward_values(sqlite_url: str) -> None:
    """verify reads SQLite's records through a faster path (the database spells the canonical
    JSON): records it cannot spell, or spells differently, are judged by record_hash."""
    from storage.db import upgrade

    upgrade(sqlite_url)
    _bulk(sqlite_url, 3)

    async def check() -> Any:
        engine = create_engine(sqlite_url)
        try:
            repo = SqlReleaseRepository(engine)
            await repo.append_audit(
                [AuditEntry(AWKWARD, AWKWARD, START, 7, AWKWARD, AWKWARD, AWKWARD, AWKWARD)]
            )
            return await verify_chain(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(check()).ok
    # The same instant, written the ISO way by hand: still the same record.
    _sql(sqlite_url, "UPDATE audit_events SET at = '2026-11-26T12:00:00.250000' WHERE seq = 1")
    assert asyncio.run(_verify(sqlite_url)).ok
    # A blob where text belongs: the quick path cannot read it, the record is still judged.
    _sql(sqlite_url, "UPDATE audit_events SET actor = X'00FF' WHERE seq = 2")
    report = asyncio.run(_verify(sqlite_url))
    assert (report.ok, report.broken_seq, report.problem) == (False, 2, "edited")


async def _verify(url: str) -> Any:
    engine = create_engine(url)
    try:
        return await verify_chain(engine)
    finally:
        await engine.dispose()
