"""Storage at scale: the repository calls behind ``/release status <svc> <env>`` and
``/release history <svc> <env>`` with 100,000 stored releases, on SQLite and PostgreSQL.

    .venv/bin/python bench/storage_scale.py                 # SQLite, then PostgreSQL
    .venv/bin/python bench/storage_scale.py --backends sqlite --releases 20000 --no-docs

The releases are written in bulk through the storage tables (``storage.tables``), not through
the bot: 100,000 releases over the 4 service/environment pairs of the tests' config
(tax-api and tax-web × staging and production), most of them finished, with their steps (3
per production deploy, 1 per staging deploy and rollback) and two votes on each production
release; ``tax-api``/``production`` ends with one release verifying, one approved and
waiting, and one awaiting approval with a vote — so every call has something to find.

Then, through the bot's own repositories (``storage.repositories``, ``storage.rails``) on the
bot's engine (``storage.db.create_engine``), the calls each command makes, in the order
``bot/engine/reading.py`` makes them (the Cloudflare part of status is not storage and is
left out):

* status: ``active_for``, ``queued``, ``get_lock``, ``freezes``, ``history(20)``, and
  ``votes`` of the release awaiting approval;
* history: ``history(11)`` (10 shown, one more to know whether there are older), and
  ``votes`` of each of the 10.

PostgreSQL: a temporary database on 127.0.0.1:5432 (user postgres, trust auth), dropped
afterwards. Target: p99 ≤ 20 ms per command. The table replaces the "Storage scale"
section of docs/benchmarks.md (``--no-docs`` leaves it alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness as h
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from storage.db import create_engine, sync_url, upgrade
from storage.rails import SqlRailsRepository
from storage.repositories import SqlReleaseRepository, SqlVoteRepository
from storage.tables import approvals, releases, steps

SECTION = "## Storage scale"
TARGET_P99_S = 0.020
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGETS = [(s, e) for s in ("tax-api", "tax-web") for e in ("staging", "production")]
START = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK = 5000
VERSION = "4f9c2b1e-7d3a-4e6b-9c8d-0a1b2c3d4e5f"
STABLE = "0a1b2c3d-4e5f-4a6b-8c7d-9e8f7a6b5c4d"


def release_rows(
    count: int,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]]:
    """(release, its steps, its votes), oldest first; ids are 1..count."""
    # the three newest releases of tax-api/production: verifying, approved, awaiting approval
    newest = [
        i for i in range(max(0, count - 12), count) if TARGETS[i % len(TARGETS)] == TARGETS[1]
    ]
    in_flight = dict(zip(newest, ("verifying", "approved", "awaiting_approval"), strict=False))
    for i in range(count):
        rid = i + 1
        service, env = TARGETS[i % len(TARGETS)]
        at = START + timedelta(minutes=5 * i)
        production = env == "production"
        rollback = i % 10 == 7
        state = "succeeded"
        if i % 20 == 3:
            state = "failed"
        elif i % 20 == 11:
            state = "rolled_back"
        elif i % 50 == 13:
            state = "cancelled"
        plan = [100] if rollback or not production else [10, 50, 100]
        state = in_flight.get(i, state)
        finished = state not in ("verifying", "approved", "awaiting_approval")
        release = {
            "id": rid,
            "service": service,
            "environment": env,
            "script": service if production else f"{service}-staging",
            "version_id": VERSION,
            "requested_by": "U0CAROL",
            "policy": env,
            "kind": "rollback" if rollback else "deploy",
            "strategy": "immediate" if len(plan) == 1 else "gradual",
            "plan": plan,
            "state": state,
            "version_tag": f"v1.{i // 1000}.{i % 1000}",
            "version_message": "Faster receipt search",
            "stable_version_id": STABLE,
            "reason": None,
            "emergency": False,
            "approvals_required": 2 if production else 0,
            "current_step": len(plan) - 1 if finished else 0,
            "paused": False,
            "channel": h.RELEASES,
            "message_ts": f"{1735689600 + 300 * i}.000100",
            "d1_bookmark": None,
            "outcome": None if state == "succeeded" else f"{state} in the bench",
            "created_at": at,
            "updated_at": at + timedelta(minutes=3),
            "finished_at": at + timedelta(minutes=3) if finished else None,
            "expires_at": at + timedelta(hours=1) if state == "awaiting_approval" else None,
            "revision": 5,
            "active_slot": f"{service}/{env}" if state == "verifying" else None,
        }
        release_steps = []
        if state not in ("approved", "awaiting_approval", "cancelled"):
            for index, percent in enumerate(plan):
                release_steps.append(
                    {
                        "release_id": rid,
                        "index": index,
                        "percent": percent,
                        "status": "passed" if finished else "deployed",
                        "deployment_id": f"{rid:08x}-0000-4000-8000-{index:012x}",
                        "intended_at": at + timedelta(seconds=10 + 60 * index),
                        "deployed_at": at + timedelta(seconds=11 + 60 * index),
                        "gate": {"summary": f"{percent}%: 1,204 requests, 0.2% errors — pass"},
                    }
                )
                if not finished:
                    break
        votes = []
        if production and state != "awaiting_approval":
            for user in ("U0ALICE", "U0BOB"):
                votes.append(
                    {
                        "release_id": rid,
                        "version_id": VERSION,
                        "user_id": user,
                        "approve": True,
                        "at": at + timedelta(minutes=1),
                        "reason": None,
                    }
                )
        elif state == "awaiting_approval":
            votes.append(
                {
                    "release_id": rid,
                    "version_id": VERSION,
                    "user_id": "U0ALICE",
                    "approve": True,
                    "at": at + timedelta(minutes=1),
                    "reason": None,
                }
            )
        yield release, release_steps, votes


def build(url: str, count: int) -> tuple[int, int]:
    """Insert ``count`` releases (with steps and votes); returns (steps, votes) written."""
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    n_steps = n_votes = 0
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA synchronous=OFF")
            batch: dict[str, list[dict[str, Any]]] = defaultdict(list)

            def flush() -> None:
                for table in (releases, steps, approvals):
                    rows = batch.pop(table.name, [])
                    if rows:
                        conn.execute(table.insert(), rows)

            for n, (release, release_steps, votes) in enumerate(release_rows(count), 1):
                batch[releases.name].append(release)
                batch[steps.name].extend(release_steps)
                batch[approvals.name].extend(votes)
                n_steps += len(release_steps)
                n_votes += len(votes)
                if n % CHUNK == 0:
                    flush()
            flush()
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('releases', 'id'), max(id)) FROM releases"
                )
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return n_steps, n_votes


async def measure(url: str, iterations: int, warmup: int) -> dict[str, list[float]]:
    engine = create_engine(url)
    repo, votes, rails = (
        SqlReleaseRepository(engine),
        SqlVoteRepository(engine),
        SqlRailsRepository(engine),
    )
    times: dict[str, list[float]] = defaultdict(list)

    async def timed(name: str, call: Any) -> Any:
        started = time.perf_counter()
        result = await call
        times[name].append(time.perf_counter() - started)
        return result

    async def status(service: str, env: str) -> None:
        started = time.perf_counter()
        await timed("active_for", repo.active_for(service, env))
        await timed("queued", repo.queued(service, env))
        await timed("get_lock", rails.get_lock(service, env))
        await timed("freezes", rails.freezes(env))
        pending = None
        for past in await timed("history(20)", repo.history(service, env, 20)):
            if past.state.value == "awaiting_approval" and pending is None:
                pending = past
        if pending is not None:
            await timed("votes (pending)", votes.votes(pending.id))
        times["status"].append(time.perf_counter() - started)

    async def history(service: str, env: str) -> None:
        started = time.perf_counter()
        rows = await timed("history(11)", repo.history(service, env, 11))
        for release in rows[:10]:
            await timed("votes (each of 10)", votes.votes(release.id))
        times["history"].append(time.perf_counter() - started)

    try:
        for n in range(warmup + iterations):
            service, env = TARGETS[n % len(TARGETS)]
            await status(service, env)
            await history(service, env)
            if n == warmup - 1:
                times.clear()
    finally:
        await engine.dispose()
    return times


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    name = f"rb_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def run_backend(
    backend: str, url: str, options: argparse.Namespace
) -> tuple[dict[str, list[float]], str, float]:
    upgrade(url)
    started = time.perf_counter()
    n_steps, n_votes = build(url, options.releases)
    built = time.perf_counter() - started
    note = (
        f"{options.releases:,} releases, {n_steps:,} steps, {n_votes:,} votes; "
        f"built in {built:.0f} s"
    )
    print(f"  {backend}: {note}", flush=True)
    load = h.wait_for_quiet(patience=options.patience)
    times = asyncio.run(measure(url, options.iterations, options.warmup))
    return times, note, load


CALLS = [
    "status",
    "active_for",
    "queued",
    "get_lock",
    "freezes",
    "history(20)",
    "votes (pending)",
    "history",
    "history(11)",
    "votes (each of 10)",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=400, help="of each command")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--patience", type=float, default=120.0, help="seconds to wait for load")
    parser.add_argument("--no-docs", action="store_true")
    options = parser.parse_args()

    results: dict[str, tuple[dict[str, list[float]], str, float]] = {}
    for backend in options.backends.split(","):
        print(f"{backend}: building ...", flush=True)
        if backend == "sqlite":
            with h.Stack() as stack:
                url = f"sqlite:///{stack.workdir / 'storage.db'}"
                results[backend] = run_backend(backend, url, options)
        elif backend == "postgresql":
            with postgres_database() as url:
                results[backend] = run_backend(backend, url, options)
        else:
            raise SystemExit(f"unknown backend {backend!r}")

    ok = True
    lines = [
        SECTION,
        "",
        f"{options.releases:,} stored releases (bulk-inserted through the storage tables) over",
        "the 4 service/environment pairs of the tests' config, so each pair holds "
        f"{options.releases // len(TARGETS):,}.",
        "Each command's repository calls, through the bot's own repositories and engine, in the",
        "order the bot makes them (status: `active_for`, `queued`, `get_lock`, `freezes`,",
        "`history(20)`, `votes` of the release awaiting approval; history: `history(11)` and",
        f"`votes` of each of the 10 shown), {options.iterations} times each, the pairs taken in",
        "turn, after a warm-up. Cloudflare's part of status is not storage and is left out.",
        "PostgreSQL is a fresh database on 127.0.0.1:5432 (ANALYZEd after the bulk insert),",
        "dropped afterwards; SQLite is a file in a temp folder, as the bot leaves it.",
        "",
        "| backend | data | command | p50 | p99 | max | load |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    per_call = [
        "",
        "Each call (p50 / p99):",
        "",
        "| call | " + " | ".join(results) + " |",
        "| --- |" + " ---: |" * len(results),
    ]
    for backend, (times, note, load) in results.items():
        label = "SQLite" if backend == "sqlite" else "PostgreSQL"
        for command in ("status", "history"):
            values = times[command]
            p99 = h.percentile(values, 99)
            flag = "" if p99 <= TARGET_P99_S else " ✗"
            ok = ok and p99 <= TARGET_P99_S
            lines.append(
                f"| {label} | {note} | `/release {command} <svc> <env>` | "
                f"{h.ms(h.percentile(values, 50))} | {h.ms(p99)}{flag} | {h.ms(max(values))} | "
                f"{load:.2f} |"
            )
            print(f"  {label} {command}: p50 {h.ms(h.percentile(values, 50))} p99 {h.ms(p99)}")
    for call in CALLS:
        if call in ("status", "history"):
            continue
        cells = []
        for times, _, _ in results.values():
            values = times.get(call, [])
            cells.append(
                f"{h.ms(h.percentile(values, 50))} / {h.ms(h.percentile(values, 99))}"
                if values
                else "—"
            )
        per_call.append(f"| `{call}` | " + " | ".join(cells) + " |")
    lines += per_call
    lines += [
        "",
        f"Target: p99 ≤ {TARGET_P99_S * 1000:.0f} ms per command — "
        f"{'met' if ok else 'MISSED (✗)'}.",
    ]
    command = ".venv/bin/python bench/storage_scale.py"
    if options.releases != 100_000:
        command += f" --releases {options.releases}"
    if options.backends != "sqlite,postgresql":
        command += f" --backends {options.backends}"
    lines += h.footer(command, [load for _, _, load in results.values()])
    table = "\n".join(lines)
    h.publish(SECTION, table, write=not options.no_docs)
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
