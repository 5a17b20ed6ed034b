"""Shared pieces of the benchmark scripts: the machine, the load average, subprocesses (the
bot as ``releasebot run`` and the Slack stand-in + Cloudflare simulator in ``bench/fakes.py``),
signed slash commands, percentiles and the sections of ``docs/benchmarks.md``.

Not a test module and not imported by the bot.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DOCS = ROOT / "docs" / "benchmarks.md"
PYTHON = sys.executable
RELEASEBOT = str(Path(PYTHON).parent / "releasebot")

SIGNING_SECRET = "bench-signing-secret-9f2c4e7a"
BOT_TOKEN = "xoxb-bench-bot-token"
AUDIT_KEY = "bench-audit-key-5e8a2c1f9d"
CF_TOKEN = "bench-cloudflare-token"
ACCOUNT = "0123456789abcdef0123456789abcdef"  # the simulator's default account
RELEASES = "C0RELEASES"
AUDIT = "C0AUDIT"
USER = "U0CAROL"

for path in (str(ROOT), str(BENCH)):
    if path not in sys.path:
        sys.path.insert(0, path)


# -- the machine and its load -----------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line for the docs: CPUs, CPU model, Python."""
    return (
        f"{os.cpu_count()} CPUs (`nproc`), {cpu_model()}, {platform.machine()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def wait_for_quiet(limit: float = 1.0, patience: float = 180.0, say: bool = True) -> float:
    """Wait until the 1-minute load average is below ``limit`` (at most ``patience`` seconds);
    returns the load average at the moment the measurement starts."""
    deadline = time.monotonic() + patience
    load = os.getloadavg()[0]
    if load >= limit and say:
        print(f"  waiting for the load average ({load:.2f}) to drop below {limit} ...", flush=True)
    while load >= limit and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    if load >= limit and say:
        print(f"  load is still {load:.2f}; measuring anyway (noted in the table)", flush=True)
    return load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- numbers -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (the value below which ``pct``% of the samples fall)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# -- /proc readings ---------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (psutil when installed, else /proc)."""
    try:
        import psutil  # type: ignore[import-not-found]

        return float(psutil.Process(pid).memory_info().rss) / 1e6
    except ImportError:
        pass
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    return math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    try:
        import psutil  # type: ignore[import-not-found]

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    except ImportError:
        pass
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


# -- HTTP -------------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 30.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            return r.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        return exc.code, None


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before {url} answered")
        with contextlib.suppress(OSError):
            status, _ = http_get(url, timeout=2)
            if status == 200:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


# -- processes --------------------------------------------------------------------------------


@dataclass
class Stack:
    """Processes and a temp folder that are cleaned up together (``with Stack() as s``)."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rb-bench-")))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __enter__(self) -> Stack:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        return self

    def __exit__(self, *_: object) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def spawn(
        self, args: list[str], env: dict[str, str] | None = None, name: str = "proc"
    ) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the folder
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def log_of(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # the Slack stand-in and the Cloudflare simulator, in one process of their own
    def fakes(self, *extra: str) -> Fakes:
        sim_port, slack_port = free_port(), free_port()
        proc = self.spawn(
            [
                PYTHON,
                str(BENCH / "fakes.py"),
                "--sim-port",
                str(sim_port),
                "--slack-port",
                str(slack_port),
                "--api-token",
                CF_TOKEN,
                *extra,
            ],
            env=clean_env(),
            name="fakes",
        )
        fakes = Fakes(proc, sim_port, slack_port)
        try:
            wait_http(f"{fakes.sim}/__bench/ready", timeout=60, proc=proc)
            wait_http(f"{fakes.slack}/__standin/messages?channel=none", timeout=60, proc=proc)
        except RuntimeError:
            print(self.log_of("fakes"), file=sys.stderr)
            raise
        return fakes

    def bot(
        self,
        fakes: Fakes,
        config: dict[str, Any],
        db_url: str | None = None,
        name: str = "bot",
        program: Sequence[str] = (RELEASEBOT, "run"),
        wait: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> Bot:
        """``releasebot run`` with a fresh SQLite file (unless ``db_url``), log level WARNING."""
        import yaml

        port = free_port()
        config_path = self.workdir / f"{name}.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        db_url = db_url or f"sqlite:///{self.workdir / (name + '.db')}"
        env = {**bot_env(fakes, port, db_url, config_path), **(extra_env or {})}
        proc = self.spawn(list(program), env=env, name=name)
        bot = Bot(proc, port, db_url)
        if wait:
            try:
                wait_http(f"{bot.url}/readyz", timeout=60, proc=proc)
            except RuntimeError:
                print(self.log_of(name), file=sys.stderr)
                raise
        return bot


def clean_env() -> dict[str, str]:
    """This environment without anything that would change how the bot runs."""
    drop = ("SLACK_", "CLOUDFLARE_", "DATABASE_URL", "RELEASEBOT_", "PORT", "LOG_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def bot_env(fakes: Fakes, port: int, db_url: str, config_path: Path) -> dict[str, str]:
    return {
        **clean_env(),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "RELEASEBOT_AUDIT_KEY": AUDIT_KEY,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": f"{fakes.slack}/api/",
        "CLOUDFLARE_API_TOKEN": CF_TOKEN,
        "CLOUDFLARE_API_BASE_URL": f"{fakes.sim}/client/v4",
        "DATABASE_URL": db_url,
        "RELEASEBOT_CONFIG": str(config_path),
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "console",
    }


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process (its own session), then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class Fakes:
    proc: subprocess.Popen[bytes]
    sim_port: int
    slack_port: int

    @property
    def sim(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def slack(self) -> str:
        return f"http://127.0.0.1:{self.slack_port}"

    def deployments_after(self, count: int, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until more than ``count`` deployment POSTs reached the simulator; returns
        ``{"count": n, "times": [monotonic seconds of each POST]}``."""
        _, body = http_get(
            f"{self.sim}/__bench/deployments?after={count}&timeout={timeout}", timeout + 5
        )
        return body

    def ephemerals_after(self, count: int, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the stand-in holds more than ``count`` ephemeral messages."""
        _, body = http_get(
            f"{self.sim}/__bench/ephemerals?after={count}&timeout={timeout}", timeout + 5
        )
        return body


@dataclass
class Bot:
    proc: subprocess.Popen[bytes]
    port: int
    db_url: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- configs ----------------------------------------------------------------------------------


def base_config() -> dict[str, Any]:
    """The tests' shape of config: tax-api and tax-web, staging (no approvals, 100% at once)
    and production (two approvals, a rollout)."""
    return {
        "slack": {"command": "/release", "release_channel": RELEASES, "audit_channel": AUDIT},
        "cloudflare": {"account_id": ACCOUNT},
        "policies": {
            "staging": {"approvals_required": 0, "rollback_without_approval": True},
            "production": {
                "approvals_required": 2,
                "approvers": ["S0RELEASEMGRS", "U0ALICE"],
                "rollout": {"steps": [10, 50, 100], "bake": "5m", "min_requests": 10},
            },
        },
        "services": {
            name: {
                "environments": {
                    "staging": {"script": f"{name}-staging", "policy": "staging"},
                    "production": {"script": name, "policy": "production"},
                }
            }
            for name in ("tax-api", "tax-web")
        },
    }


# -- signed requests --------------------------------------------------------------------------


def signed(body: str, timestamp: int | None = None) -> dict[str, str]:
    from bot.dev.slack_payloads import signed_headers

    return signed_headers(SIGNING_SECRET, body, timestamp)


def command_body(text: str, user: str = USER, channel: str = RELEASES, n: int = 0) -> str:
    from bot.dev.slack_payloads import slash_command

    body = slash_command(text, user, channel)
    # a distinct trigger id per request, as Slack sends
    return body.replace(".trigger", f".{n}.trigger") if n else body


# -- docs -------------------------------------------------------------------------------------


def publish(heading: str, table: str, write: bool) -> None:
    """Print a benchmark's section and, with ``write``, put it in docs/benchmarks.md."""
    print("\n" + table)
    if write:
        replace_section(heading, table)
        print(f"wrote the '{heading[3:]}' section of {DOCS.relative_to(ROOT)}")


def replace_section(heading: str, body: str, path: Path = DOCS) -> None:
    """Put ``body`` (which starts with ``heading``) in place of that section of ``path``, or
    append it; every other section (``## ...``) is left as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        new_lines = [*lines[:start], *body.rstrip("\n").splitlines()]
        if lines[end:]:
            new_lines += ["", *lines[end:]]
        new = "\n".join(new_lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def footer(command: str, loads: Sequence[float] = ()) -> list[str]:
    """The lines that say where, when and how a table was measured."""
    load = ""
    if loads:
        load = f" 1-minute load average when measuring: {min(loads):.2f}–{max(loads):.2f}."
    return [
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.{load}",
        "",
        "```sh",
        command,
        "```",
        "",
    ]


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)
