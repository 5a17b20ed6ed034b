"""How the audit trail scales: build a chain of N records, then time ``releasebot audit verify``
and ``releasebot audit export`` on it, as an operator runs them (separate processes, their peak
memory measured).

    .venv/bin/python bench/audit_scale.py                       # 1,000,000 records, SQLite
    .venv/bin/python bench/audit_scale.py --records 100000 --url postgresql+psycopg://...

The records are written in bulk (the chain computed here with ``storage.audit.record_hash``,
exactly as the bot chains them; COPY on PostgreSQL), not through the bot. The result table
replaces the "Audit scale" section of docs/benchmarks.md (``--no-docs`` to leave it alone).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness as h  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from storage.audit import GENESIS, canonical_json, record_hash  # noqa: E402
from storage.audit_keys import AuditKey  # noqa: E402
from storage.db import describe, sync_url, upgrade  # noqa: E402
from storage.tables import audit_events  # noqa: E402

SECTION = "## Audit scale"
DOCS = ROOT / "docs" / "benchmarks.md"
VERIFY_TARGET_S = 10.0
START = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 20_000
# The chain is keyed as the bot keys it: HMAC-SHA256 under this key, given to verify.
AUDIT_KEY = "bench-audit-key-5e8a2c1f9d3b7a60"
KEY = AuditKey(AUDIT_KEY.encode())

# One release's story, repeated: what a real trail is made of.
LIFECYCLE = [
    ("U0CAROL", "release.requested", None, "requested"),
    ("releasebot", "release.awaiting_approval", "requested", "awaiting_approval"),
    ("U0ALICE", "vote.approved", None, None),
    ("U0BOB", "vote.approved", None, None),
    ("releasebot", "release.approved", "awaiting_approval", "approved"),
    ("releasebot", "release.started", "approved", "deploying"),
    ("releasebot", "release.step_deployed", "deploying", "verifying"),
    ("releasebot", "gate.passed", None, None),
    ("releasebot", "release.succeeded", "verifying", "succeeded"),
]
COLUMNS = [c.name for c in audit_events.columns]


def records(count: int) -> Iterator[dict[str, Any]]:
    """``count`` chained records (every column, ``hash`` included), oldest first."""
    prev = GENESIS
    per_release = len(LIFECYCLE)
    for i in range(count):
        release, step = divmod(i, per_release)
        actor, action, before, after = LIFECYCLE[step]
        env = "production" if release % 3 else "staging"
        row: dict[str, Any] = {
            "seq": i + 1,
            "at": START + timedelta(milliseconds=250 * i),
            "actor": actor,
            "action": action,
            "release_id": release + 1,
            "release_key": f"R-{release + 1}",
            "service": ("tax-api", "tax-web")[release % 2],
            "environment": env,
            "before": before,
            "after": after,
            "detail": canonical_json(
                {"deployment_id": f"{release:08x}-0000-4000-8000-{i:012x}", "step_percent": 100}
                if step == 6
                else {"policy": env}
            ),
            "prev_hash": prev,
            "key_id": KEY.key_id,
        }
        row["hash"] = prev = record_hash(row, KEY)
        yield row


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def build(url: str, count: int) -> None:
    """Write ``count`` chained records into the (migrated, empty) audit table at ``url``."""
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        if engine.dialect.name == "postgresql":
            _build_postgres(engine, count)
        else:
            _build_sqlite(engine, count)
    finally:
        engine.dispose()


def _build_sqlite(engine: sa.Engine, count: int) -> None:
    # The text SQLAlchemy stores for a naive UTC datetime on SQLite, written directly.
    placeholders = ", ".join("?" for _ in COLUMNS)
    insert = f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES ({placeholders})"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        for chunk in _chunks(records(count), CHUNK):
            values = []
            for row in chunk:
                row["at"] = row["at"].strftime("%Y-%m-%d %H:%M:%S.%f")
                values.append([row[c] for c in COLUMNS])
            cursor.executemany(insert, values)
            raw.commit()
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        raw.close()


def _build_postgres(engine: sa.Engine, count: int) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY audit_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in records(count):
                copy.write_row([row[c] for c in COLUMNS])
        raw.commit()
        cursor.execute("ANALYZE audit_events")
        raw.commit()
    finally:
        raw.close()


def run_cli(url: str, args: list[str], out: Path | None = None) -> tuple[float, float, int, str]:
    """Run ``releasebot <args>`` in a process of its own; (seconds, peak RSS in MB, exit code,
    first line it said).

    The peak comes from ``/usr/bin/time -f %M``: a child forked straight from this (large)
    process would report this process's size as its own high-water mark.
    """
    env = {**os.environ, "DATABASE_URL": url, "RELEASEBOT_AUDIT_KEY": AUDIT_KEY}
    command = [sys.executable, "-m", "bot.cli", *args]
    timer = shutil.which("time", path="/usr/bin:/bin")
    if timer:
        command = [timer, "-f", "%M", *command]
    started = time.perf_counter()
    with open(out or os.devnull, "wb") as sink:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdout=sink if out else subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
    elapsed = time.perf_counter() - started
    stderr = done.stderr.decode().strip().splitlines()
    peak_kb = float(stderr.pop()) if timer and stderr and stderr[-1].isdigit() else float("nan")
    said = (done.stdout.decode() if done.stdout else "").strip().splitlines() or stderr
    return elapsed, peak_kb / 1024, done.returncode, said[0] if said else ""


def _fmt_mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--url", help="DATABASE_URL (default: a new SQLite file)")
    parser.add_argument("--no-docs", action="store_true", help="do not update the docs")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="audit-scale-"))
    url = options.url or f"sqlite:///{workdir / 'audit.db'}"
    upgrade(url)
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    with engine.connect() as conn:
        existing = conn.scalar(sa.select(sa.func.count()).select_from(audit_events))
    engine.dispose()
    if existing:
        print(f"{describe(url)} already holds {existing} audit records; use an empty database")
        return 2

    count = options.records
    print(f"building {count:,} records in {describe(url)} ...", flush=True)
    started = time.perf_counter()
    build(url, count)
    build_s = time.perf_counter() - started
    print(f"  built in {build_s:.1f} s", flush=True)

    results: list[tuple[str, float, float, str]] = []
    verify_s, verify_mb, code, said = run_cli(url, ["audit", "verify"])
    print(f"  verify: {verify_s:.1f} s, {verify_mb:.0f} MB peak: {said}", flush=True)
    if code != 0:
        print("verify did not pass on a freshly built chain", file=sys.stderr)
        return 1
    said = said.split(" (hash ")[0]
    results.append(("`releasebot audit verify`", verify_s, verify_mb, said))

    since = (START + timedelta(milliseconds=250 * (count - count // 10))).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    for label, args in (
        ("`releasebot audit export --format jsonl`", ["audit", "export", "--format", "jsonl"]),
        ("`releasebot audit export --format csv`", ["audit", "export", "--format", "csv"]),
        (
            f"`releasebot audit export --since {since}` (last 10%)",
            ["audit", "export", "--since", since],
        ),
    ):
        out = workdir / "export.out"
        seconds, rss, code, _ = run_cli(url, args, out)
        size = out.stat().st_size
        lines = sum(1 for _ in out.open("rb"))
        out.unlink()
        if code != 0:
            print(f"{label} failed", file=sys.stderr)
            return 1
        note = f"{lines:,} lines, {_fmt_mb(size)}"
        print(f"  {label}: {seconds:.1f} s, {rss:.0f} MB peak, {note}", flush=True)
        results.append((label, seconds, rss, note))

    if not options.no_docs:
        write_docs(options, url, count, build_s, results, verify_s)
        print(f"wrote the '{SECTION[3:]}' section of {DOCS.relative_to(ROOT)}")
    if not options.url:
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()
    return 0 if verify_s <= VERIFY_TARGET_S else 3


def write_docs(
    options: argparse.Namespace,
    url: str,
    count: int,
    build_s: float,
    results: list[tuple[str, float, float, str]],
    verify_s: float,
) -> None:
    command = ".venv/bin/python bench/audit_scale.py"
    if options.records != 1_000_000:
        command += f" --records {options.records}"
    if options.url:
        command += f" --url {shlex.quote(sa.make_url(url).render_as_string(hide_password=True))}"
    backend = "SQLite" if sa.make_url(url).get_backend_name() == "sqlite" else "PostgreSQL"
    verdict = "within" if verify_s <= VERIFY_TARGET_S else "OVER"
    lines = [
        SECTION,
        "",
        f"{count:,} audit records on {backend}, built in bulk ({build_s:.1f} s, the chain",
        "keyed with HMAC-SHA256 by `storage.audit.record_hash`), then each command run as its own",
        "process, as an operator runs it (wall time includes start-up; peak memory is the",
        "process's maximum resident set). Verify and export read in keyset-paged batches, so",
        "memory stays flat however long the trail is.",
        "",
        "| command | time | peak memory | result |",
        "| --- | ---: | ---: | --- |",
    ]
    for label, seconds, rss, note in results:
        lines.append(f"| {label} | {seconds:.1f} s | {rss:.0f} MB | {note} |")
    lines += [
        "",
        f"Verify target: ≤ {VERIFY_TARGET_S:.0f} s for 1,000,000 records — {verdict} "
        f"({verify_s:.1f} s).",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the end), "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, with:",
        "",
        "```sh",
        command,
        "```",
        "",
    ]
    h.replace_section(SECTION, "\n".join(lines), DOCS)


if __name__ == "__main__":
    sys.exit(main())
