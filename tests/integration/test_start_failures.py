"""Every way ``releasebot run`` (and ``releasebot dev``) can fail at start says so in one line
per problem and exits non-zero, without a traceback or a secret: a cron expression only the
scheduler would refuse, a missing token, a database URL that is not one, a config file that
cannot be read, a port another process holds.

Runs the real console script (see ``tests/e2e/test_startup.py`` for the Starter, whose
checks every outcome here goes through).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_startup import Outcome, Starter, starter  # noqa: F401 (fixture)
from tests.fixtures.bot import config_data
from tests.fixtures.processes import RELEASEBOT

pytestmark = pytest.mark.slow


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port some other process is listening on."""
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def only_line(outcome: Outcome) -> str:
    assert outcome.code != 0, outcome.output
    assert len(outcome.lines) == 1, f"expected one line:\n{outcome.output}"
    return outcome.lines[0]


def test_a_cron_expression_the_scheduler_refuses(starter: Starter) -> None:  # noqa: F811
    data = config_data()
    data["policies"]["staging"]["health_digest"] = "99 * * * *"
    path = starter.write_config(data, "cron.yml")
    line = only_line(starter.run(RELEASEBOT_CONFIG=str(path)))
    assert line.startswith(f"{path}: policies.staging.health_digest: "), line
    assert "'99 * * * *' is not a valid cron expression" in line
    # config check says the same, before any start is tried
    checked = subprocess.run(
        [str(RELEASEBOT), "config", "check", str(path)], capture_output=True, text=True
    )
    assert checked.returncode == 1
    assert checked.stderr.strip() == line
    assert "Traceback" not in checked.stderr


def test_a_missing_bot_token(starter: Starter) -> None:  # noqa: F811
    line = only_line(starter.run(SLACK_BOT_TOKEN=None))
    assert line == "SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://releasebot@db/releasebot", "DATABASE_URL: unsupported scheme 'mysql'"),
        ("releasebot.db", "DATABASE_URL: not a database URL"),
    ],
    ids=["unsupported", "not-a-url"],
)
def test_a_database_url_that_cannot_work(
    starter: Starter,  # noqa: F811
    url: str,
    expected: str,
) -> None:
    assert only_line(starter.run(DATABASE_URL=url)).startswith(expected)


def test_a_config_file_that_cannot_be_read(starter: Starter, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "a-folder.yml"
    folder.mkdir()
    line = only_line(starter.run(RELEASEBOT_CONFIG=str(folder)))
    assert line == f"{folder}: cannot read the config file (Is a directory)"


def test_a_port_in_use(starter: Starter, held_port: int) -> None:  # noqa: F811
    line = only_line(starter.run(PORT=str(held_port)))
    assert line.startswith(f"cannot listen on PORT {held_port} (Address already in use)"), line


def test_a_metrics_port_in_use(starter: Starter, held_port: int) -> None:  # noqa: F811
    line = only_line(starter.run(METRICS_PORT=str(held_port)))
    assert line.startswith(f"cannot listen on METRICS_PORT {held_port} ("), line


def test_a_metrics_port_that_is_the_slack_port(starter: Starter) -> None:  # noqa: F811
    line = only_line(starter.run(METRICS_PORT=starter.env["PORT"]))
    assert line == "METRICS_PORT must differ from PORT (or be unset)"


def test_dev_on_a_port_in_use(tmp_path: Path, held_port: int) -> None:
    done = subprocess.run(
        [str(RELEASEBOT), "dev", "--port", str(held_port), "--no-console"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, done.stdout + done.stderr
    assert lines[0].startswith(f"cannot listen on port {held_port} (Address already in use)")


def test_run_without_an_audit_key_stops_with_one_line(starter: Starter) -> None:  # noqa: F811
    line = only_line(starter.run(RELEASEBOT_AUDIT_KEY=None))
    assert line.startswith("RELEASEBOT_AUDIT_KEY is not set (the audit chain's HMAC key")


def test_an_unreadable_or_short_audit_key_is_named(starter: Starter, tmp_path: Path) -> None:  # noqa: F811
    missing = tmp_path / "no-such.key"
    line = only_line(starter.run(RELEASEBOT_AUDIT_KEY=None, RELEASEBOT_AUDIT_KEY_FILE=str(missing)))
    assert line.startswith(f"RELEASEBOT_AUDIT_KEY_FILE: cannot read the key file {missing}")
    line = only_line(starter.run(RELEASEBOT_AUDIT_KEY="short"))
    assert line == "RELEASEBOT_AUDIT_KEY: is too short (at least 16 characters)"
