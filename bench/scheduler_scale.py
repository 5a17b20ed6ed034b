"""Scheduler at scale: 200 releases rolling out at once, each step's gate due 2 s after the
step went live. How late does each one fire, and what does it cost the process?

    .venv/bin/python bench/scheduler_scale.py                 # 200 releases, bake 2 s
    .venv/bin/python bench/scheduler_scale.py --releases 50 --no-docs

A generated config holds 200 services (``svc-000`` ...) with a staging and a production
environment each, both on a policy with no approvals and a rollout of 10 → 50 → 100 % with a
2 s bake (``min_requests: 0``, so no gate bakes twice; each environment's ``health_url`` is
probed as usual). One release may roll out per service/environment at a time, so release i
goes to ``svc-i`` (staging for even i, production for odd). All 200 ``/release deploy``
commands are sent at once (signed, over HTTP); the run ends when every release has ended
and every timer (the bakes, and the summaries due one verify window after each success)
has fired.

The bot runs as ``releasebot run`` through ``bench/timed_run.py``, which only logs when the
scheduler claimed and started each timer. Lateness is measured two ways:

* **timer**: when the scheduler's task started a due timer, minus its due time;
* **step**: when a gate's verdict moved the release on (the next step's intent is stored, or
  the release finished), minus the moment its bake ended (step deployed + bake), read from the
  database afterwards — the delay a person would see.

CPU and memory are the bot process's (psutil when installed, else /proc), sampled every
0.25 s. Target: step and timer p99 ≤ 1 s. The table replaces the "Scheduler scale" section of
docs/benchmarks.md (``--no-docs`` leaves it alone).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness as h

SECTION = "## Scheduler scale"
TARGET_P99_S = 1.0
TERMINAL = ("succeeded", "rolled_back", "failed", "cancelled", "expired")


def config(services: int, sim_url: str, bake: str) -> dict[str, Any]:
    rollout = {"steps": [10, 50, 100], "bake": bake, "min_requests": 0, "probe_interval": "5s"}
    data = h.base_config()
    data["policies"] = {
        "canary": {"approvals_required": 0, "rollout": rollout},
    }
    data["services"] = {
        f"svc-{n:03d}": {
            "environments": {
                env: {
                    "script": script,
                    "policy": "canary",
                    "health_url": f"{sim_url}/__workers/{script}/healthz",
                }
                for env, script in (
                    ("staging", f"svc-{n:03d}-staging"),
                    ("production", f"svc-{n:03d}"),
                )
            }
        }
        for n in range(services)
    }
    return data


def send(url: str, text: str) -> int:
    body = h.command_body(text)
    request = urllib.request.Request(
        f"{url}/slack/events", data=body.encode(), headers=h.signed(body), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


class Sampler(threading.Thread):
    """CPU seconds and RSS of a process, every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.monotonic(), h.cpu_seconds(self.pid), h.rss_mb(self.pid)))
            self.halt.wait(self.every)

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.samples.append((time.monotonic(), h.cpu_seconds(self.pid), h.rss_mb(self.pid)))

    def cpu_seconds(self) -> float:
        return self.samples[-1][1] - self.samples[0][1]

    def busiest_second(self) -> float:
        """The busiest second's CPU, in % of one CPU."""
        peak = 0.0
        for i, (t, c, _) in enumerate(self.samples):
            for t2, c2, _ in self.samples[i + 1 :]:
                if t2 - t >= 1.0:
                    peak = max(peak, (c2 - c) / (t2 - t))
                    break
        return 100 * peak

    def peak_rss(self) -> float:
        return max(rss for _, _, rss in self.samples)


def when(text: str | None) -> datetime | None:
    """A timestamp as SQLAlchemy stores it on SQLite (naive UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None


def db_rows(db_path: Path, query: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def wait_until_done(db_path: Path, releases: int, patience: float) -> bool:
    deadline = time.monotonic() + patience
    terminal = ", ".join(f"'{s}'" for s in TERMINAL)
    while time.monotonic() < deadline:
        done = db_rows(db_path, f"SELECT count(*) FROM releases WHERE state IN ({terminal})")[0][0]
        if done >= releases:
            pending = db_rows(db_path, "SELECT count(*) FROM timers WHERE fired_at IS NULL")[0][0]
            if pending == 0:
                return True
        time.sleep(0.5)
    return False


def describe_stuck(db_path: Path) -> list[str]:
    """Which releases did not end, and which timers are still pending for them."""
    said = []
    terminal = ", ".join(f"'{s}'" for s in TERMINAL)
    for row in db_rows(
        db_path,
        f"SELECT id, service, environment, state, current_step, updated_at FROM releases"
        f" WHERE state NOT IN ({terminal})",
    ):
        pending = db_rows(
            db_path,
            f"SELECT kind, due_at, claimed_by, claimed_until FROM timers"
            f" WHERE release_id = {row['id']} AND fired_at IS NULL",
        )
        said.append(
            f"R-{row['id']} {row['service']}/{row['environment']} {row['state']}"
            f" at step {row['current_step']} since {row['updated_at']} UTC,"
            f" pending timers: {[tuple(t) for t in pending] or 'none'}"
        )
        print(f"  not ended: {said[-1]}", file=sys.stderr)
    return said


def step_lateness(db_path: Path, bake: timedelta) -> tuple[list[float], list[float]]:
    """(lateness of each gate after its bake, seconds from command to first step live)."""
    steps: dict[int, list[sqlite3.Row]] = {}
    for row in db_rows(db_path, 'SELECT * FROM release_steps ORDER BY release_id, "index"'):
        steps.setdefault(row["release_id"], []).append(row)
    late: list[float] = []
    for release in db_rows(db_path, "SELECT id, finished_at, state FROM releases"):
        rows = steps.get(release["id"], [])
        for prev, nxt in itertools.pairwise(rows):
            deployed, intended = when(prev["deployed_at"]), when(nxt["intended_at"])
            if deployed and intended:
                late.append((intended - (deployed + bake)).total_seconds())
        last_deployed = when(rows[-1]["deployed_at"]) if rows else None
        finished = when(release["finished_at"])
        if release["state"] == "succeeded" and last_deployed and finished:
            late.append((finished - (last_deployed + bake)).total_seconds())
    return late, []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--bake", type=float, default=2.0, help="seconds")
    parser.add_argument("--patience", type=float, default=180.0, help="seconds to wait for load")
    parser.add_argument("--no-docs", action="store_true")
    options = parser.parse_args()
    n = options.releases
    bake = timedelta(seconds=options.bake)

    with h.Stack() as stack:
        print(f"starting the stand-ins ({n} generated services) and the bot ...", flush=True)
        fakes = stack.fakes("--services", str(n))
        timer_log = stack.workdir / "timers.jsonl"
        tx_log = stack.workdir / "transactions.json"
        bot = stack.bot(
            fakes,
            config(n, fakes.sim, f"{options.bake:g}s"),
            program=(h.PYTHON, str(h.BENCH / "timed_run.py"), "run"),
            extra_env={"BENCH_TIMER_LOG": str(timer_log), "BENCH_TX_LOG": str(tx_log)},
        )
        db_path = Path(bot.db_url.removeprefix("sqlite:///"))
        time.sleep(2)
        idle_rss = h.rss_mb(bot.proc.pid)
        load = h.wait_for_quiet(patience=options.patience)
        print(f"sending {n} deploy commands at once (load {load:.2f}) ...", flush=True)
        sampler = Sampler(bot.proc.pid)
        fakes_cpu0 = h.cpu_seconds(fakes.proc.pid)
        sampler.start()
        started = time.monotonic()
        texts = [
            f"deploy svc-{i:03d} v1.4.2 to {'staging' if i % 2 == 0 else 'production'}"
            for i in range(n)
        ]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(lambda t: send(bot.url, t), texts))
        sent = time.monotonic() - started
        if any(s != 200 for s in statuses):
            raise SystemExit(f"the bot refused some commands: {sorted(set(statuses))}")
        done = wait_until_done(db_path, n, patience=90 + n / 2)
        stuck = [] if done else describe_stuck(db_path)
        wall = time.monotonic() - started
        sampler.stop()
        fakes_cpu = h.cpu_seconds(fakes.proc.pid) - fakes_cpu0
        end_load = os.getloadavg()[0]
        states = {
            row[0]: row[1]
            for row in db_rows(db_path, "SELECT state, count(*) FROM releases GROUP BY state")
        }
        steps_late, _ = step_lateness(db_path, bake)
        first_live = [
            row[0]
            for row in db_rows(
                db_path,
                "SELECT deployed_at FROM release_steps"
                ' WHERE "index" = 0 AND deployed_at IS NOT NULL',
            )
        ]
        h.stop(bot.proc)
        timers = [json.loads(line) for line in timer_log.read_text().splitlines()]
        transactions = dict(json.loads(tx_log.read_text())) if tx_log.exists() else {}
    cpu, peak_cpu = sampler.cpu_seconds(), sampler.busiest_second()
    peak_rss = sampler.peak_rss()
    if not done:
        print(f"  not every release ended within the patience: {states}", file=sys.stderr)

    timer_late = [t["started"] - t["due"] for t in timers]
    claim_late = [t["claimed"] - t["due"] for t in timers]
    ok = bool(steps_late) and h.percentile(steps_late, 99) <= TARGET_P99_S
    ok = ok and bool(timer_late) and h.percentile(timer_late, 99) <= TARGET_P99_S
    first = sorted(when(x) for x in first_live)  # type: ignore[type-var]
    spread = (first[-1] - first[0]).total_seconds() if first else float("nan")

    def row(label: str, values: list[float]) -> str:
        if not values:
            return f"| {label} | 0 | — | — | — |"
        return (
            f"| {label} | {len(values)} | {h.percentile(values, 50):.2f} s | "
            f"{h.percentile(values, 99):.2f} s | {max(values):.2f} s |"
        )

    outcome = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
    lines = [
        SECTION,
        "",
        f"{n} releases rolling out at once: {n} generated services with a staging and a",
        "production environment each, a policy with no approvals and steps 10 → 50 → 100 % with",
        f"a {options.bake:g} s bake (`min_requests: 0`, health URLs probed), release i going to",
        "`svc-i` (one release per service/environment at a time). All deploy commands were sent",
        f"at once over HTTP (signed; {sent:.1f} s to send them all); the bot ran as `releasebot",
        "run` (SQLite, log level WARNING) through `bench/timed_run.py`, which only logs when the",
        "scheduler claims and starts each timer; the Slack stand-in and the Cloudflare simulator",
        "ran in another process.",
        "",
        "| lateness | samples | p50 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: |",
        row("step: gate verdict after its bake ended (from the database)", steps_late),
        row("timer: the scheduler's task started, after the timer was due", timer_late),
        row("timer: claimed by the scheduler's tick, after it was due", claim_late),
        "",
        "| run | value |",
        "| --- | ---: |",
        f"| outcome | {outcome} |",
        f"| first step live, first to last release | {spread:.1f} s |",
        (
            f"| wall time, first command to last timer fired | {wall:.1f} s |"
            if done
            else f"| wall time | gave up after {wall:.0f} s: not every release ended |"
        ),
        f"| bot CPU time (all threads), in all and per release | {cpu:.1f} s, "
        f"{1000 * cpu / n:.0f} ms |",
        f"| bot CPU, busiest second | {peak_cpu:.0f} % |",
        f"| database transactions per release | {sum(transactions.values()) / n:.1f} |",
        f"| stand-ins' CPU time (simulator + Slack stand-in) | {fakes_cpu:.1f} s |",
        f"| bot RSS idle → peak | {idle_rss:.0f} MB → {peak_rss:.0f} MB |",
        f"| load average (start–end) | {load:.2f}–{end_load:.2f} |",
        "",
        f"Target: p99 lateness ≤ {TARGET_P99_S:g} s — {'met' if ok else 'MISSED'}.",
    ]
    if transactions:
        lines += [
            "",
            "Database transactions per release, by who made them (the most frequent):",
            "",
            "| transactions per release | storage method <- caller |",
            "| ---: | --- |",
        ]
        for caller, count in sorted(transactions.items(), key=lambda kv: -kv[1])[:8]:
            lines.append(f"| {count / n:.1f} | `{caller}` |")
    if stuck:
        lines += ["", "Releases that never ended (no timer left to drive them):", ""]
        lines += [f"- {line}" for line in stuck]
    command = ".venv/bin/python bench/scheduler_scale.py"
    if n != 200:
        command += f" --releases {n}"
    if options.bake != 2.0:
        command += f" --bake {options.bake:g}"
    lines += h.footer(command, [load, end_load])
    table = "\n".join(lines)
    h.publish(SECTION, table, write=not options.no_docs)
    return 0 if ok and done else 3


if __name__ == "__main__":
    sys.exit(main())
