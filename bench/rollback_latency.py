"""Rollback latency: from a signed ``/release rollback`` request leaving for the bot to the
Cloudflare simulator receiving the deployment POST.

    .venv/bin/python bench/rollback_latency.py            # 200 rollbacks
    .venv/bin/python bench/rollback_latency.py --runs 50 --no-docs

The bot runs as ``releasebot run`` (SQLite in a temp folder, log level WARNING); the Slack
stand-in and the Cloudflare simulator run in ``bench/fakes.py``, which notes the
``time.monotonic()`` of every deployment POST (one clock for all processes on the machine).
Each run rolls ``tax-api`` in ``staging`` (policy: no approvals, ``rollback_without_approval``)
back to the other of two versions, v1.4.0 and v1.4.1, so every rollback deploys something; the
next run starts once the bot has answered the previous one (``R-n (rollback): succeeded.``).

Target: p99 < 300 ms. The table replaces the "Rollback latency" section of
docs/benchmarks.md (``--no-docs`` leaves it alone).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request

import harness as h

SECTION = "## Rollback latency"
TARGET_P99_S = 0.300
VERSIONS = ("v1.4.0", "v1.4.1")  # v1.4.1 serves 100% when the simulator starts


def post(url: str, text: str) -> tuple[float, int]:
    """Send the signed command; (monotonic time it left, HTTP status)."""
    body = h.command_body(text)
    request = urllib.request.Request(
        f"{url}/slack/events", data=body.encode(), headers=h.signed(body), method="POST"
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as response:
        return started, response.status


def rollback_once(bot: h.Bot, fakes: h.Fakes, version: str) -> tuple[float, float]:
    """One rollback; (request → deployment POST, request → ack) in seconds."""
    posts = fakes.deployments_after(-1, 0)["count"]
    answers = fakes.ephemerals_after(-1, 0)["count"]
    text = f"rollback tax-api in staging to {version} --reason bench"
    started, status = post(bot.url, text)
    acked = time.monotonic()
    if status != 200:
        raise SystemExit(f"the bot answered {status} to {text!r}")
    seen = fakes.deployments_after(posts, timeout=10)
    if seen["count"] <= posts:
        raise SystemExit(f"no deployment POST within 10 s of {text!r}")
    posted_at = seen["times"][posts]
    # the next run starts when this rollback is over (the bot answers the requester)
    answer = fakes.ephemerals_after(answers, timeout=10)
    if answer["count"] <= answers or "succeeded" not in answer["texts"][-1]:
        raise SystemExit(f"the rollback did not succeed: {answer.get('texts', [])[-1:]}")
    return posted_at - started, acked - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--patience", type=float, default=180.0, help="seconds to wait for load")
    parser.add_argument("--no-docs", action="store_true")
    options = parser.parse_args()

    latencies: list[float] = []
    acks: list[float] = []
    with h.Stack() as stack:
        print("starting the stand-ins and the bot ...", flush=True)
        fakes = stack.fakes()
        bot = stack.bot(fakes, h.base_config())
        for n in range(options.warmup):
            rollback_once(bot, fakes, VERSIONS[n % 2])
        load = h.wait_for_quiet(patience=options.patience)
        print(f"measuring {options.runs} rollbacks (load {load:.2f}) ...", flush=True)
        started = time.monotonic()
        for n in range(options.runs):
            latency, ack = rollback_once(bot, fakes, VERSIONS[(options.warmup + n) % 2])
            latencies.append(latency)
            acks.append(ack)
        wall = time.monotonic() - started
        end_load = os.getloadavg()[0]
    p50, p99 = h.percentile(latencies, 50), h.percentile(latencies, 99)
    verdict = "met" if p99 < TARGET_P99_S else "MISSED"
    print(
        f"  request → deployment POST: p50 {h.ms(p50)}, p99 {h.ms(p99)}, "
        f"max {h.ms(max(latencies))}; ack p50 {h.ms(h.percentile(acks, 50))}, "
        f"p99 {h.ms(h.percentile(acks, 99))}; {wall:.0f} s in all"
    )
    lines = [
        SECTION,
        "",
        "From a signed `/release rollback tax-api in staging to <version>` request leaving the",
        "client to the Cloudflare simulator receiving the deployment POST, over HTTP, with the",
        "bot started as `releasebot run` (SQLite, log level WARNING) and the Slack stand-in and",
        "the simulator in another process. Staging's policy needs no approval for a rollback",
        "(`rollback_without_approval`); the runs alternate between v1.4.0 and v1.4.1 so each",
        "one deploys, and each starts after the previous one has succeeded. Between request and",
        "POST the bot acks, checks the policy, reads the live deployment and the versions from",
        "Cloudflare, stores the release with its audit records, posts the card and the",
        "announcement to Slack, claims the release's timer and stores the step's intent.",
        "",
        "| runs | p50 | p99 | max | ack p50 | ack p99 | load (start–end) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {len(latencies)} | {h.ms(p50)} | {h.ms(p99)} | {h.ms(max(latencies))} | "
        f"{h.ms(h.percentile(acks, 50))} | {h.ms(h.percentile(acks, 99))} | "
        f"{load:.2f}–{end_load:.2f} |",
        "",
        f"Target: p99 < {TARGET_P99_S * 1000:.0f} ms — {verdict} ({h.ms(p99)}).",
    ]
    command = ".venv/bin/python bench/rollback_latency.py"
    if options.runs != 200:
        command += f" --runs {options.runs}"
    lines += h.footer(command, [load, end_load])
    table = "\n".join(lines)
    h.publish(SECTION, table, write=not options.no_docs)
    return 0 if p99 < TARGET_P99_S else 3


if __name__ == "__main__":
    sys.exit(main())
