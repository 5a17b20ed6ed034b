"""The shipped example config, ``releasebot config check`` on it, and the config API.

The broken-config cases live in ``test_config_errors.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import Config, ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "releasebot.example.yml"


def _console_script() -> Path:
    """The installed ``releasebot`` console script of the interpreter running the tests."""
    beside = Path(sys.executable).parent / "releasebot"
    if beside.exists():
        return beside
    found = shutil.which("releasebot")
    if found is None:
        pytest.fail("the releasebot console script is not installed (pip install -e .[dev])")
    return Path(found)


@pytest.fixture
def example() -> Config:
    return load_config(EXAMPLE)


def test_example_passes_config_check() -> None:
    result = CliRunner().invoke(app, ["config", "check", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"{EXAMPLE}: OK (2 services, 4 environments, 2 policies)")


def test_config_check_reads_releasebot_config_when_no_path_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELEASEBOT_CONFIG", str(EXAMPLE))
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


@pytest.mark.slow
def test_console_script_checks_the_example() -> None:
    """The installed entry point (not just the typer app) works."""
    proc = subprocess.run(
        [str(_console_script()), "config", "check", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK (2 services, 4 environments, 2 policies)" in proc.stdout


@pytest.mark.slow
def test_console_script_reports_a_broken_file_without_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "releasebot.yml"
    broken.write_text(EXAMPLE.read_text().replace("policy: production", "policy: prod"))
    proc = subprocess.run(
        [str(_console_script()), "config", "check", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert (
        f"{broken}: services.tax-api.environments.production.policy: unknown policy 'prod'"
        in proc.stderr
    )
    assert (
        f"{broken}: services.tax-web.environments.production.policy: unknown policy 'prod'"
        in proc.stderr
    )


def test_example_matches_the_operator_contract(example: Config) -> None:
    assert example.slack.command == "/release"
    assert example.cloudflare.account_id == "0123456789abcdef0123456789abcdef"
    assert list(example.policies) == ["staging", "production"]

    staging = example.policies["staging"]
    assert staging.approvals_required == 0
    assert staging.rollout is None

    prod = example.policies["production"]
    assert prod.approvals_required == 2
    assert prod.approvers == ["S0RELEASEMGRS", "U0ALICE"]
    assert prod.allow_self_approval is False
    assert prod.approval_ttl == timedelta(minutes=60)
    assert prod.rollout is not None
    assert prod.rollout.steps == [10, 50, 100]
    assert prod.rollout.bake == timedelta(minutes=5)
    assert prod.rollout.max_error_rate == 0.01
    assert prod.rollout.max_error_rate_ratio == 2.0
    assert prod.health_digest == "0 9 * * 1-5"


@pytest.mark.parametrize("service", ["tax-api", "tax-web"])
def test_example_services(example: Config, service: str) -> None:
    envs = example.services[service].environments
    assert list(envs) == ["staging", "production"]
    assert envs["staging"].script == f"{service}-staging"
    assert envs["staging"].policy == "staging"
    assert envs["production"].script == service
    assert envs["production"].policy == "production"
    for env in envs.values():
        assert env.health_url is not None
        assert env.health_url.startswith("https://")
        assert env.health_url.endswith("/healthz")


def test_only_tax_api_has_d1_databases_and_migrations(example: Config) -> None:
    with_d1 = [
        (svc, env)
        for svc, service in example.services.items()
        for env, environment in service.environments.items()
        if environment.d1_database_id
    ]
    assert with_d1 == [("tax-api", "staging"), ("tax-api", "production")]
    for _, env in with_d1:
        migrations = example.services["tax-api"].environments[env].migrations
        assert migrations is not None and migrations.destructive == "refuse"
        assert [c.sql for c in migrations.checks] == [
            "PRAGMA integrity_check",
            "PRAGMA foreign_key_check",
        ]


def test_migrations_need_a_d1_database_and_every_check_an_expectation(example: Config) -> None:
    data = example.model_dump(by_alias=True)
    staging = data["services"]["tax-api"]["environments"]["staging"]
    staging["d1_database_id"] = None
    with pytest.raises(ConfigError, match="migrations need the environment's d1_database_id"):
        parse_config(data)
    staging["d1_database_id"] = "db-1"
    staging["migrations"]["validate"] = [{"sql": "SELECT 1"}]
    with pytest.raises(ConfigError, match="every validate check needs an 'expect'"):
        parse_config(data)


def test_every_key_of_the_example_is_commented() -> None:
    """Each key line has a comment on it or on the line above (operators copy this file)."""
    lines = EXAMPLE.read_text().splitlines()
    uncommented = []
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or ":" not in stripped:
            continue
        previous = lines[number - 1].strip() if number else ""
        if "#" not in line and not previous.startswith("#"):
            uncommented.append(f"line {number + 1}: {stripped}")
    assert uncommented == [], "\n".join(uncommented)


def test_lookup_helpers(example: Config) -> None:
    assert example.environment("tax-api", None) == (
        "staging",
        example.services["tax-api"].environments["staging"],
    )
    name, env = example.environment("tax-web", "production")
    assert (name, env.script) == ("production", "tax-web")
    assert example.policy_for("tax-api", "production") is example.policies["production"]
    with pytest.raises(KeyError):
        example.environment("tax-api", "qa")
    assert example.cross_check() == []


def test_config_error_lists_problems() -> None:
    error = ConfigError(["a.yml: x: one", "a.yml: y: two"])
    assert error.problems == ["a.yml: x: one", "a.yml: y: two"]
    assert str(error) == "a.yml: x: one\na.yml: y: two"
