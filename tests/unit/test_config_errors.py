"""Broken config files: ``releasebot config check`` names each problem by file and key path.

Every case starts from the shipped example, breaks it in one way, and runs the real command.
The checks are: exit code 1, one line per problem as ``<file>: <key.path>: <message>``, and
never a traceback.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from bot.cli import app
from bot.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "releasebot.example.yml"

Data = dict[str, Any]


def _example() -> Data:
    data = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(data, dict)
    return data


def _check(path: Path) -> Result:
    """Run ``releasebot config check <path>`` and assert it failed cleanly."""
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "OK" not in result.stdout
    return result


def _problems(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[Data], Path]:
    """Write a config mapping to ``releasebot.yml`` in a temporary directory."""

    def _write(data: Data) -> Path:
        path = tmp_path / "releasebot.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return _write


def _prod(data: Data) -> Data:
    return data["policies"]["production"]


def _env(data: Data, service: str = "tax-api", env: str = "production") -> Data:
    return data["services"][service]["environments"][env]


def _set(value: Any, *keys: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return change


def _delete(*keys: str) -> Callable[[Data], None]:
    def change(data: Data) -> None:
        target = data
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


PROD = ("policies", "production")
ROLLOUT = (*PROD, "rollout")
API_PROD = ("services", "tax-api", "environments", "production")

# (case id, change to the example, expected "<key.path>: <message start>")
CASES: list[tuple[str, Callable[[Data], None], str]] = [
    (
        "unknown policy",
        _set("prod", *API_PROD, "policy"),
        "services.tax-api.environments.production.policy: "
        "unknown policy 'prod' (known: production, staging)",
    ),
    ("unknown key in a section", _set("blue", "slack", "colour"), "slack.colour: unknown key"),
    (
        "misspelt key",
        _set(3, *PROD, "approval_required"),
        "policies.production.approval_required: unknown key",
    ),
    ("unknown section", _set({}, "service"), "service: unknown key"),
    (
        "a reserve as large as the burst",
        _set(20, "cloudflare", "calls", "reserved_for_releases"),
        "cloudflare.calls: reserved_for_releases must be less than burst",
    ),
    (
        "a retry budget under a second",
        _set("0s", "cloudflare", "retry", "steps"),
        "cloudflare.retry: steps must be at least 1s",
    ),
    (
        "a read limit window under a second",
        _set("0s", "slack", "read_limit", "per"),
        "slack.read_limit.per: per must be at least 1s",
    ),
    (
        "integer as text",
        _set("two", *PROD, "approvals_required"),
        "policies.production.approvals_required: Input should be a valid integer",
    ),
    (
        "boolean as text",
        _set("maybe", *PROD, "allow_self_approval"),
        "policies.production.allow_self_approval: Input should be a valid boolean",
    ),
    (
        "list as text",
        _set("10,50,100", *ROLLOUT, "steps"),
        "policies.production.rollout.steps: Input should be a valid list",
    ),
    (
        "mapping as list",
        _set(["staging"], "services", "tax-web", "environments"),
        "services.tax-web.environments: expected a mapping of keys, got list",
    ),
    (
        "empty environment",
        _set(None, "services", "tax-web", "environments", "staging"),
        "services.tax-web.environments.staging: expected a mapping of keys, got nothing",
    ),
    (
        "duration in words",
        _set("5 minutes", *PROD, "approval_ttl"),
        "policies.production.approval_ttl: '5 minutes' is not a duration",
    ),
    (
        "negative duration",
        _set("-5m", *ROLLOUT, "bake"),
        "policies.production.rollout.bake: '-5m' is not a duration",
    ),
    (
        "duration as list",
        _set([5], *ROLLOUT, "bake"),
        "policies.production.rollout.bake: expected a duration like 30s, 5m or 1h",
    ),
    (
        "falling steps",
        _set([50, 10], *ROLLOUT, "steps"),
        "policies.production.rollout.steps: steps must rise",
    ),
    (
        "steps short of 100",
        _set([10, 50], *ROLLOUT, "steps"),
        "policies.production.rollout.steps: the last step must be 100",
    ),
    (
        "no steps",
        _set([], *ROLLOUT, "steps"),
        "policies.production.rollout.steps: needs at least one step",
    ),
    (
        "step out of range",
        _set([0, 100], *ROLLOUT, "steps"),
        "policies.production.rollout.steps.0: Input should be greater than 0 (got 0)",
    ),
    (
        "error rate above 1",
        _set(1.5, *ROLLOUT, "max_error_rate"),
        "policies.production.rollout.max_error_rate: Input should be less than or equal to 1",
    ),
    (
        "approvals without approvers",
        _delete(*PROD, "approvers"),
        "policies.production.approvers: approvals_required is 2 but no approvers are listed",
    ),
    (
        "approvals with an empty approver list",
        _set([], *PROD, "approvers"),
        "policies.production.approvers: approvals_required is 2 but no approvers are listed",
    ),
    (
        "approver that is not an id",
        _set(["@release-managers"], *PROD, "approvers"),
        "policies.production.approvers.0: '@release-managers' is not a Slack user id",
    ),
    (
        "channel name instead of id",
        _set("#releases", "slack", "release_channel"),
        "slack.release_channel: '#releases' is not a Slack channel id",
    ),
    (
        "command without slash",
        _set("release", "slack", "command"),
        "slack.command: 'release' is not a slash command",
    ),
    (
        "short account id",
        _set("0123", "cloudflare", "account_id"),
        "cloudflare.account_id: '0123' is not a Cloudflare account id",
    ),
    (
        "health url without scheme",
        _set("tax-api.example.workers.dev/healthz", *API_PROD, "health_url"),
        "services.tax-api.environments.production.health_url: "
        "'tax-api.example.workers.dev/healthz' is not an http:// or https:// URL",
    ),
    (
        "script with capitals",
        _set("Tax_API", *API_PROD, "script"),
        "services.tax-api.environments.production.script: 'Tax_API' is not a Worker script",
    ),
    (
        "cron with four fields",
        _set("0 9 * *", *PROD, "health_digest"),
        "policies.production.health_digest: '0 9 * *' is not a 5-field cron expression",
    ),
    (
        "missing channel",
        _delete("slack", "audit_channel"),
        "slack.audit_channel: required key is missing",
    ),
    ("missing section", _delete("cloudflare"), "cloudflare: required key is missing"),
    (
        "service without environments",
        _set({}, "services", "tax-web", "environments"),
        "services.tax-web.environments: Dictionary should have at least 1 item",
    ),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_problem_is_reported_with_file_and_key_path(
    write: Callable[[Data], Path], change: Callable[[Data], None], expected: str
) -> None:
    data = _example()
    change(data)
    path = write(data)
    problems = _problems(_check(path))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {expected}"), problems[0]


def test_every_problem_is_reported_in_one_run(write: Callable[[Data], Path]) -> None:
    """Problems in different sections, including the cross-section check, all at once."""
    data = _example()
    data["slack"]["colour"] = "blue"
    _prod(data)["approval_ttl"] = "5 minutes"
    _prod(data)["rollout"]["steps"] = [50, 10]
    del _prod(data)["approvers"]
    _env(data)["policy"] = "prod"
    _env(data, "tax-web", "staging")["policy"] = "stage"
    path = write(data)

    problems = _problems(_check(path))

    expected = [
        "slack.colour: unknown key",
        "policies.production.approval_ttl: '5 minutes' is not a duration",
        "policies.production.rollout.steps: steps must rise",
        "policies.production.approvers: approvals_required is 2 but no approvers",
        "services.tax-api.environments.production.policy: unknown policy 'prod'",
        "services.tax-web.environments.staging.policy: unknown policy 'stage'",
    ]
    assert len(problems) == len(expected), problems
    for want in expected:
        assert any(line.startswith(f"{path}: {want}") for line in problems), (want, problems)


def test_approvers_problem_is_reported_once_when_it_is_the_only_one(
    write: Callable[[Data], Path],
) -> None:
    data = _example()
    del _prod(data)["approvers"]
    problems = _problems(_check(write(data)))
    assert len(problems) == 1
    assert "policies.production.approvers:" in problems[0]


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "releasebot.yml"
    path.write_text("slack:\n  command: /release\n  release_channel: [C0RELEASES\n")
    problems = _problems(_check(path))
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: (yaml) at line 4, column 1: ")
    assert problems[0].endswith("(while parsing a flow sequence from line 3)")


def test_bad_indentation_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "releasebot.yml"
    path.write_text("slack:\n  command: /release\n release_channel: C0RELEASES\n")
    problems = _problems(_check(path))
    assert problems == [
        f"{path}: (yaml) at line 3, column 2: expected <block end>, but found "
        "'<block mapping start>' (while parsing a block mapping from line 1)"
    ]


def test_duplicate_key_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace(
        "    approvals_required: 2\n", "    approvals_required: 2\n    approvals_required: 0\n"
    )
    path = tmp_path / "releasebot.yml"
    path.write_text(text)
    problems = _problems(_check(path))
    assert len(problems) == 1
    line = EXAMPLE.read_text().splitlines().index("    approvals_required: 2") + 2
    assert problems[0].startswith(
        f"{path}: (yaml) at line {line}, column 5: duplicate key 'approvals_required'"
    )


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    text = (
        EXAMPLE.read_text()
        .replace(
            "  staging:\n    # Approvals needed before the deploy starts (0 = none).\n",
            "  staging: &base\n    # Approvals needed before the deploy starts (0 = none).\n",
        )
        .replace(
            "  production:\n    # Distinct approvals",
            "  production:\n    <<: *base\n    # Distinct approvals",
        )
    )
    assert "<<: *base" in text
    path = tmp_path / "releasebot.yml"
    path.write_text(text)
    config = load_config(path)
    assert config.policies["production"].approvals_required == 2


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    assert _problems(_check(path)) == [
        f"{path}: cannot read the config file (No such file or directory)"
    ]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    problems = _problems(_check(tmp_path))
    assert problems == [f"{tmp_path}: cannot read the config file (Is a directory)"]


@pytest.mark.parametrize(
    "text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"]
)
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "releasebot.yml"
    path.write_text(text)
    assert _problems(_check(path)) == [f"{path}: the config file is empty (or holds only comments)"]


@pytest.mark.parametrize("text", ["- slack\n- services\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "releasebot.yml"
    path.write_text(text)
    problems = _problems(_check(path))
    assert problems == [
        f"{path}: (top level): expected a mapping with the sections "
        "slack, cloudflare, policies and services"
    ]


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "releasebot.yml"
    path.write_bytes(b"slack:\n  command: \xff\xfe/release\n")
    problems = _problems(_check(path))
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: (yaml): not plain UTF-8 text")


def test_deeply_nested_file(tmp_path: Path) -> None:
    path = tmp_path / "releasebot.yml"
    path.write_text("[" * 50_000)
    problems = _problems(_check(path))
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: (yaml)")


def test_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "releasebot.yml"
    path.write_text("#" * 1_000_001)
    assert _problems(_check(path)) == [f"{path}: the config file is larger than 1000000 bytes"]


def test_parse_config_names_the_source() -> None:
    data = _example()
    _env(data)["policy"] = "prod"
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "inline")
    assert caught.value.problems == [
        "inline: services.tax-api.environments.production.policy: "
        "unknown policy 'prod' (known: production, staging)"
    ]


def test_parse_config_does_not_change_its_input() -> None:
    data = _example()
    before = copy.deepcopy(data)
    parse_config(data)
    assert data == before
