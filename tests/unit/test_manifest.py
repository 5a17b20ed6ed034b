"""``app_manifest.yml``: valid against Slack's published manifest schema, and consistent with
the bot (one request URL, the configured slash command, only the scopes the bot uses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft7Validator

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "app_manifest.yml"
EXAMPLE_CONFIG = REPO / "releasebot.example.yml"
# The contracts folder sits beside the repository checkout, not inside it.
SCHEMA = REPO / ".." / "shared" / "contracts" / "slack-app-manifest.schema.json"

BOT_SCOPES = {
    "commands",
    "chat:write",
    "chat:write.public",
    "users:read",
    "usergroups:read",
    "app_mentions:read",
    # `audit verify --from-slack` reads the audit channel's checkpoints (public or private)
    "channels:history",
    "groups:history",
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    if not SCHEMA.is_file():
        pytest.fail(
            f"Slack's manifest schema is expected at {SCHEMA.resolve()} "
            "(the shared contracts folder beside the repository checkout)"
        )
    schema = json.loads(SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _errors(validator: Draft7Validator, data: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '(top level)'}: {error.message}"
        for error in validator.iter_errors(data)
    ]


def test_manifest_is_valid(validator: Draft7Validator, manifest: dict[str, Any]) -> None:
    assert _errors(validator, manifest) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("features", "slash_commands", 0, "command"), "release"),
        (("features", "bot_user", "colour"), "blue"),
        (("settings", "interactivity", "is_enabled"), "yes"),
    ],
)
def test_schema_rejects_broken_manifests(
    validator: Draft7Validator,
    manifest: dict[str, Any],
    path: tuple[str | int, ...],
    value: object,
) -> None:
    """The validation above is not vacuous: the schema catches these mistakes."""
    broken = json.loads(json.dumps(manifest))
    target: Any = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert _errors(validator, broken) != []


def test_slash_command_matches_the_example_config(manifest: dict[str, Any]) -> None:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == [config["slack"]["command"]]
    (command,) = manifest["features"]["slash_commands"]
    assert command["should_escape"] is False
    assert command["description"]
    assert command["usage_hint"]


def _urls(manifest: dict[str, Any]) -> list[str]:
    settings = manifest["settings"]
    return [
        *(c["url"] for c in manifest["features"]["slash_commands"]),
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ]


def test_every_request_url_is_the_one_slack_endpoint(manifest: dict[str, Any]) -> None:
    urls = [urlsplit(url) for url in _urls(manifest)]
    assert len(urls) == 3
    assert {url.path for url in urls} == {"/slack/events"}
    assert {url.scheme for url in urls} == {"https"}
    assert len({url.netloc for url in urls}) == 1


def test_bot_scopes_are_exactly_what_the_bot_uses(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "no user-token scopes"
    assert len(scopes["bot"]) == len(set(scopes["bot"]))
    assert set(scopes["bot"]) == BOT_SCOPES


def test_features_and_settings(manifest: dict[str, Any]) -> None:
    assert manifest["display_information"]["name"] == "releasebot"
    assert manifest["display_information"]["description"]
    features = manifest["features"]
    assert features["bot_user"] == {"display_name": "releasebot", "always_online": True}
    # No message.im subscription: the Messages tab must not invite messages nobody reads.
    assert features["app_home"] == {
        "home_tab_enabled": True,
        "messages_tab_enabled": True,
        "messages_tab_read_only_enabled": True,
    }
    assert "im:write" not in manifest["oauth_config"]["scopes"]["bot"]
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened", "app_mention"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["socket_mode_enabled"] is False
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False


def test_socket_mode_is_explained_next_to_the_switch() -> None:
    lines = MANIFEST.read_text().splitlines()
    switch = next(i for i, line in enumerate(lines) if "socket_mode_enabled:" in line)
    comment = []
    for line in reversed(lines[:switch]):
        if not line.strip().startswith("#"):
            break
        comment.append(line)
    text = " ".join(comment)
    assert "SLACK_APP_TOKEN" in text
    assert "true" in text
