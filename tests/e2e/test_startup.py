"""``releasebot run`` at start, as an operator meets it: what it says when something is wrong
(one clear line per problem, a non-zero exit, no traceback, no secret), and that a good setup
serves ``/healthz`` and ``/readyz`` on a database it creates and migrates itself.

The process is the real console script, configured only through its environment; Slack is
the Web API stand-in (which answers ``invalid_auth`` to the token ``xoxb-invalid``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.dev.slack_standin import StandinState
from tests.fixtures.bot import AUDIT_KEY, BOT_TOKEN, SIGNING_SECRET, config_data
from tests.fixtures.processes import RELEASEBOT
from tests.fixtures.servers import ServerThread, free_port

pytestmark = pytest.mark.slow

# How long a start that cannot succeed may take to say so and exit (a database that never
# answers included: a few seconds of connect timeout, and the process's own start).
GIVE_UP_WITHIN = 10.0
DB_PASSWORD = "pg-pa55word-e1f2"
APP_TOKEN = "xapp-1-A0RELEASEBOT-1-startsecret77"


@dataclass
class Outcome:
    code: int
    output: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]


class Starter:
    """Runs ``releasebot run`` with a good environment that a test then spoils."""

    def __init__(self, folder: Path, slack_url: str, cf: Any) -> None:
        self.folder = folder
        self.cf = cf
        self.secrets = [BOT_TOKEN, SIGNING_SECRET, cf.token, DB_PASSWORD, APP_TOKEN, AUDIT_KEY]
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "RELEASEBOT_AUDIT_KEY": AUDIT_KEY,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": f"{slack_url}/api/",
            "CLOUDFLARE_API_TOKEN": cf.token,
            "CLOUDFLARE_API_BASE_URL": cf.base_url,
            "DATABASE_URL": f"sqlite:///{folder / 'data' / 'fresh' / 'releasebot.db'}",
            "RELEASEBOT_CONFIG": str(self.write_config(config_data())),
            "PORT": str(free_port()),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }

    def write_config(self, data: Any, name: str = "releasebot.yml") -> Path:
        path = self.folder / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    def run(self, **changes: str | None) -> Outcome:
        """Start it with ``changes`` to the environment (None removes a variable) and wait
        for it to give up."""
        env = {**self.env, **changes}
        env = {k: v for k, v in env.items() if v is not None}
        started = time.monotonic()
        try:
            done = subprocess.run(
                [str(RELEASEBOT), "run"],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=GIVE_UP_WITHIN,
            )
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"") + (exc.stderr or b"")
            raise AssertionError(
                f"still running after {GIVE_UP_WITHIN} s:\n{out.decode(errors='replace')}"
            ) from None
        output = (done.stdout + done.stderr).decode(errors="replace")
        outcome = Outcome(done.returncode, output, time.monotonic() - started)
        self.assert_clean(outcome.output)
        return outcome

    def assert_clean(self, output: str) -> None:
        assert "Traceback" not in output, output
        for secret in self.secrets:
            assert secret not in output, f"a secret is in the output:\n{output}"


@pytest.fixture
def starter(
    tmp_path: Path, slack_standin: tuple[ServerThread, StandinState], cf_server: Any
) -> Starter:
    return Starter(tmp_path, slack_standin[0].url, cf_server)


@pytest.fixture
def silent_database() -> Iterator[int]:
    """A port that takes connections and never says a word (a hung or firewalled server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


def _only_line(outcome: Outcome) -> str:
    assert outcome.code != 0, outcome.output
    assert len(outcome.lines) == 1, f"expected one line:\n{outcome.output}"
    return outcome.lines[0]


# -- the database --------------------------------------------------------------------------


def test_postgresql_refusing_connections_stops_the_start_with_one_line(starter: Starter) -> None:
    url = f"postgresql+psycopg://releasebot:{DB_PASSWORD}@127.0.0.1:1/releasebot"
    outcome = starter.run(DATABASE_URL=url)
    line = _only_line(outcome)
    assert line.startswith("database unavailable (PostgreSQL at 127.0.0.1:1/releasebot)"), line
    assert outcome.seconds < GIVE_UP_WITHIN


def test_a_sqlite_file_that_cannot_be_made_stops_the_start_with_one_line(
    starter: Starter, tmp_path: Path
) -> None:
    (tmp_path / "not-a-folder").write_text("a file where the database's folder should be")
    outcome = starter.run(DATABASE_URL=f"sqlite:///{tmp_path / 'not-a-folder' / 'rb.db'}")
    line = _only_line(outcome)
    assert line.startswith("database unavailable (SQLite at "), line
    assert "not-a-folder" in line


def test_a_silent_database_stops_the_start_within_a_bounded_time(
    starter: Starter, silent_database: int
) -> None:
    url = f"postgresql+psycopg://releasebot:{DB_PASSWORD}@127.0.0.1:{silent_database}/rb"
    line = _only_line(starter.run(DATABASE_URL=url))
    assert line.startswith(f"database unavailable (PostgreSQL at 127.0.0.1:{silent_database}/")


# -- settings and config -------------------------------------------------------------------


def test_missing_tokens_and_a_bad_config_give_one_line_each(starter: Starter) -> None:
    data = config_data()
    data["services"]["tax-api"]["environments"]["production"]["policy"] = "no-such-policy"
    bad = starter.write_config(data, "bad.yml")
    outcome = starter.run(
        SLACK_BOT_TOKEN=None, CLOUDFLARE_API_TOKEN=None, RELEASEBOT_CONFIG=str(bad)
    )
    assert outcome.code != 0
    assert len(outcome.lines) == 3, outcome.output
    slack, cloudflare, config = outcome.lines
    assert slack.startswith("SLACK_BOT_TOKEN is not set")
    assert cloudflare.startswith("CLOUDFLARE_API_TOKEN is not set")
    assert "bad.yml" in config and "no-such-policy" in config


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"SLACK_BOT_TOKEN": "xoxp-user-token-c0ffee99", "SLACK_SIGNING_SECRET": None},
            ["SLACK_BOT_TOKEN does not look like", "SLACK_SIGNING_SECRET is not set"],
        ),
        ({"SLACK_APP_TOKEN": "xoxb-not-an-app-token-1234"}, ["SLACK_APP_TOKEN does not look like"]),
        ({"PORT": "http", "LOG_LEVEL": "loud"}, ["PORT: ", "LOG_LEVEL: "]),
        ({"RELEASEBOT_CONFIG": "/nonexistent/releasebot.yml"}, ["/nonexistent/releasebot.yml: "]),
        (
            {
                "SLACK_API_URL": "http://slack.example.com/api/",
                "CLOUDFLARE_API_BASE_URL": "http://api.cloudflare.com/client/v4",
            },
            [
                "SLACK_API_URL: 'http://slack.example.com/api/' is not an https:// URL",
                "CLOUDFLARE_API_BASE_URL: 'http://api.cloudflare.com/client/v4' is not an https://",
            ],
        ),
        ({"HOST": "every interface"}, ["HOST: 'every interface' is not an address to listen on"]),
    ],
    ids=["tokens", "app-token", "malformed", "no-config", "http-api", "host"],
)
def test_each_bad_setting_gives_its_line(
    starter: Starter, changes: dict[str, str | None], expected: list[str]
) -> None:
    outcome = starter.run(**changes)
    assert outcome.code != 0
    assert len(outcome.lines) == len(expected), outcome.output
    for line, start in zip(outcome.lines, expected, strict=True):
        assert start in line, outcome.output
    for value in changes.values():
        if value and ("token" in value):
            assert value not in outcome.output


# -- Slack ---------------------------------------------------------------------------------


def test_slack_refusing_the_bot_token_stops_the_start(starter: Starter) -> None:
    starter.secrets.append("xoxb-invalid")
    outcome = starter.run(SLACK_BOT_TOKEN="xoxb-invalid")
    assert outcome.code != 0
    refusals = [line for line in outcome.lines if "Slack refused" in line]
    assert refusals == ["Slack refused SLACK_BOT_TOKEN on auth.test (invalid_auth)"]
    assert outcome.lines[-1] == refusals[0], "the reason is the last word"


def test_slack_refusing_the_app_token_stops_a_socket_mode_start(starter: Starter) -> None:
    starter.secrets.append("xapp-invalid")
    outcome = starter.run(SLACK_APP_TOKEN="xapp-invalid", SLACK_SIGNING_SECRET=None)
    assert outcome.code != 0
    assert outcome.lines[-1] == (
        "Slack refused SLACK_APP_TOKEN on apps.connections.open (invalid_auth)"
    ), outcome.output


def test_slack_out_of_reach_stops_the_start(starter: Starter) -> None:
    outcome = starter.run(SLACK_API_URL="http://127.0.0.1:1/api/")
    assert outcome.code != 0
    assert outcome.lines[-1].startswith("cannot reach Slack at http://127.0.0.1:1/api/"), (
        outcome.output
    )


# -- a good start --------------------------------------------------------------------------


def test_a_good_setup_creates_its_database_and_serves_health_then_stops_on_sigterm(
    starter: Starter,
    slack_standin: tuple[ServerThread, StandinState],
) -> None:
    database = starter.folder / "data" / "fresh" / "releasebot.db"
    assert not database.parent.exists()
    log = starter.folder / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(RELEASEBOT), "run"],
            env=starter.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{starter.env['PORT']}"
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert health is not None and health.status_code == 200, log.read_text()
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert httpx.get(f"{url}/metrics", timeout=5).status_code == 200
        assert database.is_file()
        assert slack_standin[1].calls_to("auth.test"), "the token was checked with auth.test"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, "a polite stop exits 0"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    output = log.read_text()
    starter.assert_clean(output)
    assert "letting work in progress finish" in output


def test_host_says_where_run_listens(starter: Starter) -> None:
    """HOST=127.0.0.2 (a loopback address of its own): the bot answers there and nowhere
    else; without HOST it listens on every interface."""
    port = starter.env["PORT"]
    log = starter.folder / "bot.log"
    for host, reachable, unreachable in (
        ("127.0.0.2", "127.0.0.2", "127.0.0.1"),
        (None, "127.0.0.1", None),
    ):
        env = {**starter.env, **({"HOST": host} if host else {})}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(RELEASEBOT), "run"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 30
            health = None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    health = httpx.get(f"http://{reachable}:{port}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            assert health is not None and health.status_code == 200, log.read_text()
            if unreachable is not None:
                with pytest.raises(httpx.ConnectError):
                    httpx.get(f"http://{unreachable}:{port}/healthz", timeout=1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        assert f"serving Slack over HTTP on {host or '0.0.0.0'} port {port}" in log.read_text()
