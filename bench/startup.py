"""Start-up: from ``releasebot run`` (a new process, a fresh SQLite file) to ``/readyz`` OK,
and the process's resident memory once it has idled for 5 s.

    .venv/bin/python bench/startup.py             # 5 starts
    .venv/bin/python bench/startup.py --runs 3 --no-docs

Each start is the installed ``releasebot`` command in a process of its own, with the Slack
stand-in and the Cloudflare simulator already serving (``bench/fakes.py``): it reads the
settings and the config, creates and migrates the database (Alembic), checks the token with
``auth.test``, resumes nothing (the database is new) and serves; ``/readyz`` answers 200 once
the database is reachable and at the migrations' head. The table replaces the "Start-up"
section of docs/benchmarks.md (``--no-docs`` leaves it alone).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import urllib.error

import harness as h

SECTION = "## Start-up"
IDLE_S = 5.0


def start_once(stack: h.Stack, fakes: h.Fakes, n: int) -> tuple[float, float, float]:
    """(seconds to /readyz OK, seconds to /healthz OK, RSS in MB after IDLE_S idle)."""
    started = time.monotonic()
    bot = stack.bot(fakes, h.base_config(), name=f"start-{n}", wait=False)
    healthy = ready = None
    while ready is None:
        if bot.proc.poll() is not None:
            print(stack.log_of(f"start-{n}"), file=sys.stderr)
            raise SystemExit(f"releasebot run exited with {bot.proc.returncode}")
        if time.monotonic() - started > 60:
            raise SystemExit("no /readyz within 60 s")
        with contextlib.suppress(OSError, urllib.error.URLError):
            if healthy is None and h.http_get(f"{bot.url}/healthz", timeout=1)[0] == 200:
                healthy = time.monotonic() - started
            if h.http_get(f"{bot.url}/readyz", timeout=1)[0] == 200:
                ready = time.monotonic() - started
                break
        time.sleep(0.005)
    time.sleep(IDLE_S)
    rss = h.rss_mb(bot.proc.pid)
    h.stop(bot.proc)
    return ready, healthy if healthy is not None else ready, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--patience", type=float, default=120.0, help="seconds to wait for load")
    parser.add_argument("--no-docs", action="store_true")
    options = parser.parse_args()

    results: list[tuple[float, float, float, float]] = []
    with h.Stack() as stack:
        fakes = stack.fakes()
        start_once(stack, fakes, 0)  # warms the disk cache for the imports; not counted
        for n in range(1, options.runs + 1):
            load = h.wait_for_quiet(patience=options.patience if n == 1 else 30)
            ready, healthy, rss = start_once(stack, fakes, n)
            print(
                f"  start {n}: /healthz {h.ms(healthy)}, /readyz {h.ms(ready)}, "
                f"RSS after {IDLE_S:g} s idle {rss:.0f} MB (load {load:.2f})",
                flush=True,
            )
            results.append((ready, healthy, rss, load))

    readies = [r[0] for r in results]
    lines = [
        SECTION,
        "",
        "`releasebot run` started as a new process with a fresh SQLite file (the Slack stand-in",
        "and the Cloudflare simulator already serving elsewhere), until `/readyz` answered 200;",
        "it migrates the new database, checks the token with `auth.test`, then serves. One start",
        f"before the measured ones warms the disk cache. Memory is the resident set after "
        f"{IDLE_S:g} s idle.",
        "",
        "| start | to `/healthz` | to `/readyz` | RSS after 5 s idle | load |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, (ready, healthy, rss, load) in enumerate(results, 1):
        lines.append(f"| {n} | {h.ms(healthy)} | {h.ms(ready)} | {rss:.0f} MB | {load:.2f} |")
    lines += [
        "",
        f"Median to `/readyz`: {h.ms(sorted(readies)[len(readies) // 2])} "
        f"(min {h.ms(min(readies))}, max {h.ms(max(readies))}); "
        f"idle RSS {min(r[2] for r in results):.0f}–{max(r[2] for r in results):.0f} MB.",
    ]
    command = ".venv/bin/python bench/startup.py"
    if options.runs != 5:
        command += f" --runs {options.runs}"
    lines += h.footer(command, [r[3] for r in results])
    table = "\n".join(lines)
    h.publish(SECTION, table, write=not options.no_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
