"""Ack latency and throughput of signed ``/release`` slash commands: the bot against a bare
Bolt app, both under uvicorn with one worker, driven by ``wrk``.

    .venv/bin/python bench/ack_latency.py                  # both scenarios, c = 1, 8, 32
    .venv/bin/python bench/ack_latency.py --duration 5 --no-docs

Started as subprocesses in one run: the Slack stand-in and the Cloudflare simulator
(``bench/fakes.py``), the bot exactly as ``releasebot run`` (SQLite in a temp folder, log
level WARNING) and the baseline ``bench/bare_bolt.py``. ``wrk`` (``apt-get install wrk``) sends
requests from a pool signed here (``bench/signed_command.lua`` explains why).

Two scenarios for the bot (the baseline acks every command the same way):

* **ack path** — ``/release frobnicate``: an unknown subcommand, answered in the ack itself
  (the usage error), so nothing runs after the ack and both apps measure the ack path alone.
* **status** — ``/release status tax-api staging``: acked at once, then each command's
  background task reads the live split from Cloudflare and the database and answers with
  ``chat.postEphemeral``. That work keeps running after the ack, by design, and shares the
  event loop with the acks; the table also says how long the bot needed after the run to
  answer every command (the backlog wrk's closed loop left behind).

Each cell is measured ``--rounds`` times (default 3), bare and bot taking turns, and the table
shows the median of each figure: on a shared 2-CPU machine one 10 s cell can differ from the
next by 20 %, for either app.

Targets (ack path): p99 bot ÷ bare ≤ 1.25, requests/s bot ÷ bare ≥ 0.8. The table replaces the
"Ack latency" section of docs/benchmarks.md (``--no-docs`` leaves it alone).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import harness as h

SECTION = "## Ack latency"
P99_TARGET = 1.25
RPS_TARGET = 0.8
POOL_SIZE = 2000
# The status scenario offers this many requests/s in all (each connection paced): about half
# of what the bot answers per second on the 2-CPU machine, so the background work keeps up
# and the ack is measured beside it rather than behind an ever-growing backlog.
STATUS_RATE = 40.0
SCENARIOS = {
    "ack path": "frobnicate tax-api",
    "status": "status tax-api staging",
}


@dataclass
class Cell:
    scenario: str
    app: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    load: float
    drain_s: float | None = None
    answered: int | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass
class Summary:
    """The rounds of one cell: the median of each figure."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    load: float
    requests: int
    drain_s: float | None
    answered: int | None

    @classmethod
    def of(cls, rounds: list[Cell]) -> Summary:
        drains = [c.drain_s for c in rounds if c.drain_s is not None]
        answered = [c.answered for c in rounds if c.answered is not None]
        return cls(
            rps=statistics.median(c.rps for c in rounds),
            p50_ms=statistics.median(c.p50_ms for c in rounds),
            p99_ms=statistics.median(c.p99_ms for c in rounds),
            errors=sum(c.errors for c in rounds),
            load=max(c.load for c in rounds),
            requests=sum(c.requests for c in rounds),
            drain_s=max(drains) if drains else None,
            answered=sum(answered) if answered else None,
        )


def write_pool(path: Path, text: str) -> None:
    """POOL_SIZE signed requests (distinct trigger ids), timestamped now."""
    now = int(time.time())
    entries = []
    for n in range(POOL_SIZE):
        body = h.command_body(text, n=n + 1)
        headers = h.signed(body, now)
        fields = (
            headers["x-slack-request-timestamp"],
            headers["x-slack-signature"],
            body,
        )
        entries.append("{" + ", ".join(json.dumps(f) for f in fields) + "}")
    path.write_text("return {\n" + ",\n".join(entries) + "\n}\n")


def wrk(
    url: str, pool: Path, connections: int, seconds: float, rate: float | None = None
) -> dict[str, float]:
    """Run wrk; with ``rate``, each connection paces itself to offer ``rate`` requests/s in
    all (else a closed loop, as fast as the app answers)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(h.BENCH / "signed_command.lua"),
        url,
    ]
    env = {**h.clean_env(), "SIGNED_POOL": str(pool)}
    if rate:
        env["SIGNED_DELAY_MS"] = str(round(1000 * connections / rate))
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"WRK_RESULT (\{.*\})", out)
    if match is None:
        raise RuntimeError(f"wrk said:\n{out}")
    return json.loads(match.group(1))


def post_one(url: str, text: str) -> int:
    body = h.command_body(text)
    request = urllib.request.Request(
        f"{url}/slack/events", data=body.encode(), headers=h.signed(body), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def wait_answered(fakes: h.Fakes, expected: int, patience: float = 60.0) -> tuple[float, int]:
    """(seconds until the stand-in holds ``expected`` ephemeral answers, how many it holds);
    gives up after ``patience`` seconds."""
    started = time.monotonic()
    count = 0
    while time.monotonic() - started < patience:
        count = fakes.ephemerals_after(expected - 1, timeout=2.0)["count"]
        if count >= expected:
            break
    if count < expected:
        print(f"  only {count} of {expected} answered after {patience:g} s", flush=True)
    return time.monotonic() - started, count


def measure(
    scenario: str,
    app: str,
    url: str,
    text: str,
    connections: int,
    options: argparse.Namespace,
    pool: Path,
    fakes: h.Fakes | None = None,
) -> Cell:
    """One cell: warm up, then measure. ``fakes`` given: the command's answers are counted
    (the bot's status scenario), and the cell waits for the warm-up's to arrive first."""
    rate = options.status_rate if scenario == "status" else None
    write_pool(pool, text)
    load = h.wait_for_quiet(patience=options.patience)
    wrk(url, pool, connections, options.warmup, rate)
    before = 0
    if fakes is not None:
        before = wait_for_backlog(fakes)
    result = wrk(url, pool, connections, options.duration, rate)
    drain = answered = None
    if fakes is not None:
        drain, count = wait_answered(fakes, before + int(result["requests"]))
        answered = count - before
    errors = sum(
        int(result[k])
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    cell = Cell(
        scenario,
        app,
        connections,
        int(result["requests"]),
        result["duration_us"] / 1e6,
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
        errors,
        load,
        drain,
        answered,
    )
    extra = ""
    if drain is not None:
        extra = f", {answered} of {cell.requests} answered {drain:.1f} s after the run"
    print(
        f"  {scenario:8} {app:4} c={connections:<3} {cell.rps:8.0f} req/s  "
        f"p50 {cell.p50_ms:6.2f} ms  p99 {cell.p99_ms:6.2f} ms  errors {errors}  "
        f"load {load:.2f}{extra}",
        flush=True,
    )
    return cell


def wait_for_backlog(fakes: h.Fakes) -> int:
    """Wait until answers stop arriving (a second without one); returns how many there are."""
    last = fakes.ephemerals_after(-1, 0)["count"]
    while True:
        count = fakes.ephemerals_after(last, timeout=1.0)["count"]
        if count == last:
            return count
        last = count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each cell")
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--patience", type=float, default=60.0, help="seconds to wait for load")
    parser.add_argument("--adapter", choices=["asgi", "starlette"], default="asgi")
    parser.add_argument(
        "--status-rate",
        type=float,
        default=STATUS_RATE,
        help="requests/s offered in the status scenario (paced; 0: a closed loop)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell")
    parser.add_argument("--no-docs", action="store_true")
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    connections = [int(c) for c in options.connections.split(",")]
    scenarios = [s.strip() for s in options.scenarios.split(",")]

    cells: list[Cell] = []
    with h.Stack() as stack:
        print("starting the stand-ins, the bot and the bare Bolt app ...", flush=True)
        fakes = stack.fakes()
        config = h.base_config()
        # Every request comes from one bench user: without this, the per-person read limit
        # (10 per 30 s by default) would answer nearly every status command with "try again".
        config["slack"]["read_limit"] = {"commands": 1000, "per": "1s"}
        bot = stack.bot(fakes, config)
        bare_port = h.free_port()
        bare_env = {
            **h.clean_env(),
            "SLACK_SIGNING_SECRET": h.SIGNING_SECRET,
            "SLACK_BOT_TOKEN": h.BOT_TOKEN,
        }
        stack.spawn(
            [
                h.PYTHON,
                str(h.BENCH / "bare_bolt.py"),
                "--port",
                str(bare_port),
                "--slack-api",
                f"{fakes.slack}/api/",
                "--adapter",
                options.adapter,
            ],
            env=bare_env,
            name="bare",
        )
        bare_url = f"http://127.0.0.1:{bare_port}"
        wait_ack(bare_url)
        if post_one(bot.url, "frobnicate") != 200:
            raise SystemExit("the bot refused a signed command")
        pool = stack.workdir / "pool.lua"
        print(f"measuring: {options.warmup:g} s warm-up + {options.duration:g} s per cell")
        for scenario in scenarios:
            text = SCENARIOS[scenario]
            for c in connections:
                for _ in range(options.rounds):
                    cells.append(measure(scenario, "bare", bare_url, text, c, options, pool))
                    watched = fakes if scenario == "status" else None
                    cells.append(measure(scenario, "bot", bot.url, text, c, options, pool, watched))
        if bot.proc.poll() is not None:
            print(stack.log_of("bot"), file=sys.stderr)
            raise SystemExit("the bot died during the run")
    table, verdict_ok = render(cells, options)
    h.publish(SECTION, table, write=not options.no_docs)
    return 0 if verdict_ok else 3


def wait_ack(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if post_one(url, "frobnicate") == 200:
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def render(cells: list[Cell], options: argparse.Namespace) -> tuple[str, bool]:
    grouped: dict[tuple[str, str, int], list[Cell]] = {}
    for c in cells:
        grouped.setdefault((c.scenario, c.app, c.connections), []).append(c)
    by = {key: Summary.of(rounds) for key, rounds in grouped.items()}
    paced = (
        f"offered at a fixed {options.status_rate:g} requests/s in all (each connection paced),"
        if options.status_rate
        else "in a closed loop,"
    )
    lines = [
        SECTION,
        "",
        "Signed `/release` slash commands posted to `/slack/events` by `wrk` (one thread, c",
        f"connections, {options.warmup:g} s warm-up then {options.duration:g} s per cell, "
        f"{options.rounds} rounds per cell with bare and bot taking turns; the table shows "
        "the median of each figure) against",
        "the bot started as `releasebot run` (uvicorn, one worker, SQLite, log level WARNING,",
        "the Slack stand-in and the Cloudflare simulator in another process) and against",
        "`bench/bare_bolt.py`: a bare Bolt `AsyncApp` whose one listener acks at once",
        "(`process_before_response=True`, request verification on with the same secret, Bolt's",
        f"{options.adapter} adapter) under the same uvicorn. Both ran side by side in one run,",
        "each cell once the 1-minute load average was below 1.0 (or after a wait of "
        f"{options.patience:g} s;",
        "the load column). Latency is wrk's, from request written to response read.",
        "",
        "- **ack path**: `/release frobnicate tax-api` in a closed loop (each connection sends",
        "  its next request as soon as the answer arrives). An unknown subcommand is answered",
        "  in the ack (the usage error, with its did-you-mean): nothing runs after the ack, so",
        "  both apps measure the ack path alone.",
        f"- **status**: `/release status tax-api staging` {paced} so the",
        "  background work keeps up. The bot acks at once, then a background task reads",
        "  Cloudflare and the database and answers with `chat.postEphemeral`; that work shares",
        "  the event loop with the acks. *Answered* counts the answers the stand-in received",
        "  and how long after the run the last one came.",
        "",
        "| scenario | c | bare req/s | bot req/s | bot ÷ bare req/s | bare p50 | bot p50 "
        "| bare p99 | bot p99 | bot ÷ bare p99 | errors | load | answered |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    ok = True
    missed: list[str] = []
    for scenario in dict.fromkeys(c.scenario for c in cells):
        for conns in dict.fromkeys(c.connections for c in cells):
            bare, bot = by.get((scenario, "bare", conns)), by.get((scenario, "bot", conns))
            if bare is None or bot is None:
                continue
            rps_ratio = bot.rps / bare.rps
            p99_ratio = bot.p99_ms / bare.p99_ms
            judged = scenario == "ack path"
            flag_rps = " ✗" if judged and rps_ratio < RPS_TARGET else ""
            flag_p99 = " ✗" if judged and p99_ratio > P99_TARGET else ""
            if flag_rps or flag_p99:
                ok = False
                missed.append(f"c={conns}")
            answered = "—"
            if bot.drain_s is not None:
                answered = f"{bot.answered:,} of {bot.requests:,}, +{bot.drain_s:.1f} s"
            lines.append(
                f"| {scenario} | {conns} | {bare.rps:,.0f} | {bot.rps:,.0f} | "
                f"{rps_ratio:.2f}{flag_rps} | {bare.p50_ms:.2f} ms | {bot.p50_ms:.2f} ms | "
                f"{bare.p99_ms:.2f} ms | {bot.p99_ms:.2f} ms | {p99_ratio:.2f}{flag_p99} | "
                f"{bare.errors + bot.errors} | {max(bare.load, bot.load):.2f} | {answered} |"
            )
    verdict = "met at every concurrency" if ok else f"MISSED (✗) at {', '.join(missed)}"
    lines += [
        "",
        f"Targets (ack path): p99 bot ÷ bare ≤ {P99_TARGET}, req/s bot ÷ bare ≥ {RPS_TARGET} — "
        f"{verdict}. The status rows are for context:",
        "the offered rate is fixed, so their req/s are equal by design, and the bot's latency",
        "includes waiting for the event loop while it does the work the commands asked for.",
    ]
    command = ".venv/bin/python bench/ack_latency.py"
    if options.duration != 10.0:
        command += f" --duration {options.duration:g}"
    if options.warmup != 2.0:
        command += f" --warmup {options.warmup:g}"
    if options.connections != "1,8,32":
        command += f" --connections {options.connections}"
    if options.scenarios != ",".join(SCENARIOS):
        command += f" --scenarios '{options.scenarios}'"
    if options.status_rate != STATUS_RATE:
        command += f" --status-rate {options.status_rate:g}"
    if options.rounds != 3:
        command += f" --rounds {options.rounds}"
    if options.adapter != "asgi":
        command += f" --adapter {options.adapter}"
    lines += h.footer(command, [c.load for c in cells])
    return "\n".join(lines), ok


if __name__ == "__main__":
    sys.exit(main())
