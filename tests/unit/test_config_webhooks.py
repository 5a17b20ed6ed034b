"""The ``webhooks`` section: defaults, and each mistake named by its key path."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from bot.config import ConfigError, parse_config
from bot.settings import secret_from_env
from bot.webhooks import load_credentials, secret_values

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "releasebot.example.yml"

Data = dict[str, Any]


def _example(*hooks: Data) -> Data:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["webhooks"] = list(hooks)
    return data


def _hook(**changes: Any) -> Data:
    values: Data = {
        "name": "ci",
        "url": "https://ci.example.com/releasebot",
        "events": ["succeeded", "failed"],
        "secret_env": "RELEASEBOT_CI_SECRET",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def _pagerduty(**changes: Any) -> Data:
    values: Data = {
        "name": "pagerduty",
        "url": "https://events.pagerduty.com/v2/enqueue",
        "events": ["rolled_back"],
        "secret_env": "RELEASEBOT_PD_SECRET",
        "format": "pagerduty",
        "routing_key_env": "PAGERDUTY_ROUTING_KEY",
    }
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def _problems(data: Data) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "rb.yml")
    return caught.value.problems


def test_webhooks_are_optional_and_have_defaults() -> None:
    assert parse_config(_example()).webhooks == []
    config = parse_config(_example(_hook(), _pagerduty()))
    ci, pd = config.webhooks
    assert (ci.name, ci.format, ci.timeout, ci.max_attempts) == (
        "ci",
        "releasebot",
        timedelta(seconds=5),
        8,
    )
    assert ci.routing_key_env is None
    assert (pd.format, pd.routing_key_env, pd.events) == (
        "pagerduty",
        "PAGERDUTY_ROUTING_KEY",
        ["rolled_back"],
    )
    tuned = parse_config(_example(_hook(timeout="1.5s", max_attempts=3))).webhooks[0]
    assert (tuned.timeout, tuned.max_attempts) == (timedelta(seconds=1.5), 3)


CASES: list[tuple[str, list[Data], str]] = [
    (
        "pagerduty without a routing key",
        [_pagerduty(routing_key_env=None)],
        "webhooks.0.routing_key_env: the pagerduty format needs routing_key_env",
    ),
    (
        "routing key on the releasebot format",
        [_hook(routing_key_env="PAGERDUTY_ROUTING_KEY")],
        "webhooks.0.routing_key_env: only the pagerduty format uses a routing key",
    ),
    (
        "pagerduty with other events",
        [_pagerduty(events=["requested", "rolled_back"])],
        "webhooks.0.events: the pagerduty format sends only rolled_back events (remove requested)",
    ),
    (
        "unknown event",
        [_hook(events=["deployed"])],
        "webhooks.0.events.0: Input should be 'requested', 'approved', 'step', 'succeeded', "
        "'rolled_back' or 'failed'",
    ),
    ("no events", [_hook(events=[])], "webhooks.0.events: List should have at least 1 item"),
    ("events missing", [_hook(events=None)], "webhooks.0.events: required key is missing"),
    (
        "url without http",
        [_hook(url="ftp://ci.example.com/hook")],
        "webhooks.0.url: 'ftp://ci.example.com/hook' is not an http:// or https:// URL",
    ),
    (
        "plain http to another machine",
        [_hook(url="http://ci.example.com/hook")],
        "webhooks.0.url: 'http://ci.example.com/hook' is not an https:// URL (http:// is only "
        "for a loopback address such as 127.0.0.1)",
    ),
    (
        "plain http to a private address",
        [_hook(url="http://10.0.0.7:8080/hook")],
        "webhooks.0.url: 'http://10.0.0.7:8080/hook' is not an https:// URL",
    ),
    (
        "secret written into the file",
        [_hook(secret="hunter2hunter2")],
        "webhooks.0.secret: unknown key",
    ),
    ("secret_env missing", [_hook(secret_env=None)], "webhooks.0.secret_env: required key"),
    (
        "secret_env that is not a variable name",
        [_hook(secret_env="ci-secret")],
        "webhooks.0.secret_env: 'ci-secret' is not an environment variable name",
    ),
    (
        "unknown format",
        [_hook(format="slack")],
        "webhooks.0.format: Input should be 'releasebot' or 'pagerduty'",
    ),
    ("zero timeout", [_hook(timeout="0s")], "webhooks.0.timeout: timeout must be more than 0s"),
    ("long timeout", [_hook(timeout="5m")], "webhooks.0.timeout: timeout must be at most 60s"),
    (
        "no attempts",
        [_hook(max_attempts=0)],
        "webhooks.0.max_attempts: Input should be greater than or equal to 1 (got 0)",
    ),
    (
        "name with capitals",
        [_hook(name="CI Hook")],
        "webhooks.0.name: 'CI Hook' is not a webhook name",
    ),
    (
        "two webhooks with one name",
        [_hook(), _hook(url="https://other.example.com/")],
        "webhooks.1.name: another webhook is named 'ci'",
    ),
    ("webhook as text", ["https://ci.example.com"], "webhooks.0: expected a mapping"),
]


@pytest.mark.parametrize(("hooks", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_named_by_its_key_path(hooks: list[Data], expected: str) -> None:
    problems = _problems(_example(*hooks))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"rb.yml: {expected}"), problems[0]


def test_webhook_problems_come_with_the_others_in_one_run() -> None:
    data = _example(_pagerduty(routing_key_env=None), _hook(timeout="never"))
    data["slack"]["colour"] = "blue"
    problems = _problems(data)
    expected = [
        "rb.yml: slack.colour: unknown key",
        "rb.yml: webhooks.1.timeout: 'never' is not a duration",
        "rb.yml: webhooks.0.routing_key_env: the pagerduty format needs routing_key_env",
    ]
    assert len(problems) == len(expected), problems
    for want in expected:
        assert any(p.startswith(want) for p in problems), (want, problems)


def test_config_check_prints_webhook_problems(tmp_path: Path) -> None:
    path = tmp_path / "releasebot.yml"
    path.write_text(yaml.safe_dump(_example(_pagerduty(routing_key_env=None)), sort_keys=False))
    result = CliRunner().invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"{path}: webhooks.0.routing_key_env: the pagerduty format needs routing_key_env: "
        "the name of the environment variable holding the Events v2 routing key"
    ]


def test_secrets_are_read_from_the_environment_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(_example(_hook(), _pagerduty()))
    monkeypatch.delenv("RELEASEBOT_CI_SECRET", raising=False)
    monkeypatch.delenv("RELEASEBOT_PD_SECRET", raising=False)
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.setenv("RELEASEBOT_CI_SECRET", "")
    assert secret_from_env("RELEASEBOT_CI_SECRET") is None  # empty counts as unset

    found, problems = load_credentials(config.webhooks)
    assert found == {}
    assert problems == [
        "RELEASEBOT_CI_SECRET is not set (the HMAC secret of webhooks.0 (ci))",
        "RELEASEBOT_PD_SECRET is not set (the HMAC secret of webhooks.1 (pagerduty))",
        "PAGERDUTY_ROUTING_KEY is not set (the PagerDuty routing key of webhooks.1 (pagerduty))",
    ]

    monkeypatch.setenv("RELEASEBOT_CI_SECRET", "ci-secret-value")
    monkeypatch.setenv("RELEASEBOT_PD_SECRET", "pd-secret-value")
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", "routing-key-value")
    found, problems = load_credentials(config.webhooks)
    assert problems == []
    assert found["ci"].secret.get_secret_value() == "ci-secret-value"
    assert found["ci"].routing_key is None
    pd = found["pagerduty"]
    assert pd.routing_key is not None and pd.routing_key.get_secret_value() == "routing-key-value"
    assert "routing-key-value" not in repr(pd)


WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_a_whsec_secret_is_checked_at_start_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = parse_config(_example(_hook()))
    where = "(the HMAC secret of webhooks.0 (ci))"
    short = "whsec_" + base64.b64encode(b"only-twelve!").decode()
    cases = {
        "whsec_not*base64!": "RELEASEBOT_CI_SECRET is not a valid whsec_ secret: "
        f"the part after whsec_ is not base64 {where}",
        "whsec_" + base64.urlsafe_b64encode(bytes([251] * 30)).decode(): "RELEASEBOT_CI_SECRET "
        f"is not a valid whsec_ secret: the part after whsec_ is not base64 {where}",
        short: "RELEASEBOT_CI_SECRET is not a valid whsec_ secret: it holds 12 bytes; "
        f"a whsec_ secret holds 24 to 64 random bytes {where}",
        f"{WHSEC} {short}": "RELEASEBOT_CI_SECRET: secret 2 of 2 is not a valid whsec_ secret: "
        f"it holds 12 bytes; a whsec_ secret holds 24 to 64 random bytes {where}",
        "whsec_" + base64.b64encode(bytes(65)).decode(): "RELEASEBOT_CI_SECRET is not a valid "
        f"whsec_ secret: it holds 65 bytes; a whsec_ secret holds 24 to 64 random bytes {where}",
    }
    for value, problem in cases.items():
        monkeypatch.setenv("RELEASEBOT_CI_SECRET", value)
        found, problems = load_credentials(config.webhooks)
        assert (found, problems) == ({}, [problem])
        assert value.removeprefix("whsec_") not in problem


def test_whsec_secrets_are_keys_and_plain_secrets_keep_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = parse_config(_example(_hook()))
    old = "whsec_" + base64.b64encode(bytes(range(100, 124))).decode().rstrip("=")

    monkeypatch.setenv("RELEASEBOT_CI_SECRET", WHSEC)
    [creds] = load_credentials(config.webhooks)[0].values()
    assert creds.signing_keys() == (bytes(range(32)),)
    assert creds.legacy_secret() == WHSEC  # the deprecated header: the secret as written
    assert "whsec_" not in repr(creds) and str(bytes(range(32))) not in repr(creds)

    # a rotation: newest first, separated by whitespace; unpadded base64 is accepted
    monkeypatch.setenv("RELEASEBOT_CI_SECRET", f"  {WHSEC}\n{old} ")
    [creds] = load_credentials(config.webhooks)[0].values()
    assert creds.signing_keys() == (bytes(range(32)), bytes(range(100, 124)))
    assert creds.legacy_secret() == old

    # moving off a plain secret: it may stand in the list next to the new whsec_ one
    monkeypatch.setenv("RELEASEBOT_CI_SECRET", f"{WHSEC} plain-old-secret")
    [creds] = load_credentials(config.webhooks)[0].values()
    assert creds.signing_keys() == (bytes(range(32)), b"plain-old-secret")
    assert creds.legacy_secret() == "plain-old-secret"

    # a plain secret alone is taken whole, spaces and all, as before: its UTF-8 bytes
    monkeypatch.setenv("RELEASEBOT_CI_SECRET", "a plain secret with spaces")
    [creds] = load_credentials(config.webhooks)[0].values()
    assert creds.signing_keys() == (b"a plain secret with spaces",)
    assert creds.legacy_secret() == "a plain secret with spaces"


def test_the_log_scrubber_hears_of_every_secret_and_its_base64_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = parse_config(_example(_hook()))
    monkeypatch.setenv("RELEASEBOT_CI_SECRET", f"{WHSEC} plain-old-secret")
    values = secret_values(load_credentials(config.webhooks)[0])
    assert set(values) == {
        f"{WHSEC} plain-old-secret",
        WHSEC,
        WHSEC.removeprefix("whsec_"),
        "plain-old-secret",
    }
