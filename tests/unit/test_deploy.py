"""The production recipes in ``deploy/``, checked without Docker or systemd.

``compose.yaml`` must be valid against the Compose Specification's JSON schema (vendored as
``tests/fixtures/compose-spec.json`` from github.com/compose-spec/compose-spec, file
``schema/compose-spec.json`` at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6, Apache-2.0)
and describe the topology the README promises; the systemd unit must run the installed
console script with its secrets from an environment file.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from bot.settings import ENVIRONMENT

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SCHEMA = REPO / "tests" / "fixtures" / "compose-spec.json"
BOTS = ("bot-a", "bot-b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def errors(validator: Draft7Validator, data: Any) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(data)
    ]


def test_compose_file_is_valid_against_the_compose_specification(
    validator: Draft7Validator, compose: dict[str, Any]
) -> None:
    assert errors(validator, compose) == []


@pytest.mark.parametrize(
    ("service", "key", "value"),
    [
        ("bot-a", "restart", 3),
        ("bot-a", "healthcheck", {"test": ["CMD", "true"], "interval": 15}),
        ("postgres", "depends_on", {"bot-a": {"condition": "when_it_feels_like_it"}}),
        ("bot-b", "no_such_key", True),
    ],
)
def test_the_schema_catches_broken_services(
    validator: Draft7Validator, compose: dict[str, Any], service: str, key: str, value: Any
) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"][service][key] = value
    assert errors(validator, broken) != []


def test_two_bot_replicas_on_postgresql_with_health_checks_and_restarts(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", *BOTS, "caddy"}
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
    assert services["postgres"]["image"].startswith("postgres:")
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    for name in BOTS:
        bot = services[name]
        assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert any("/readyz" in part for part in bot["healthcheck"]["test"]), name
        assert bot["stop_signal"] == "SIGTERM"
        # Secrets come from the env file, never from the compose file itself.
        assert [f["path"] for f in bot["env_file"]] == ["releasebot.env"]
        assert set(bot["environment"]) <= set(ENVIRONMENT), bot["environment"]
        for secret in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "CLOUDFLARE_API_TOKEN"):
            assert secret not in bot["environment"]
        assert bot["environment"]["METRICS_PORT"] != bot["environment"]["PORT"]
        assert "ports" not in bot, "only the TLS terminator is published"
    assert services["caddy"]["depends_on"] == {b: {"condition": "service_healthy"} for b in BOTS}


def test_the_env_file_examples_name_what_the_bot_reads() -> None:
    example = (DEPLOY / "releasebot.env.example").read_text()
    names = set(re.findall(r"^#?\s*([A-Z_]+)=", example, re.MULTILINE))
    assert names <= set(ENVIRONMENT), names - set(ENVIRONMENT)
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "CLOUDFLARE_API_TOKEN"} <= names
    assert "DATABASE_URL" in names
    password = re.search(r"POSTGRES_PASSWORD=(\S+)", (DEPLOY / "postgres.env.example").read_text())
    assert password and f":{password.group(1)}@postgres:5432/" in example
    ignored = (REPO / ".gitignore").read_text()
    assert "/deploy/*.env" in ignored


def test_the_caddyfile_sends_slack_to_both_replicas() -> None:
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert "reverse_proxy bot-a:3000 bot-b:3000" in caddy
    assert "health_uri /readyz" in caddy
    assert "/metrics" not in caddy


def test_the_systemd_unit_runs_the_console_script_with_an_environment_file() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "releasebot.service").read_text())
    service = unit["Service"]
    assert service["ExecStart"].split() == ["/opt/releasebot/venv/bin/releasebot", "run"]
    assert service["ExecStartPre"].endswith("releasebot config check")
    assert service["EnvironmentFile"] == "/etc/releasebot/releasebot.env"
    assert service["User"] == "releasebot"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert "StartLimitBurst" in unit["Unit"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    text = (DEPLOY / "releasebot.service").read_text()
    names = re.findall(r"^Environment=([A-Z_]+)=", text, re.MULTILINE)
    assert "RELEASEBOT_CONFIG" in names
    assert set(names) <= set(ENVIRONMENT), names


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The installed console script is this venv's; the unit is otherwise verbatim.
    releasebot = str(Path(sys.executable).parent / "releasebot")
    unit = tmp_path / "releasebot.service"
    text = (DEPLOY / "releasebot.service").read_text()
    unit.write_text(text.replace("/opt/releasebot/venv/bin/releasebot", releasebot))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "releasebot.service" in line
    ]
    assert done.returncode == 0 and complaints == [], done.stdout + done.stderr
