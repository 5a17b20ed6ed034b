"""Settings from the environment: ``https://`` for the APIs the bot sends its tokens to
(http:// only to this machine), and ``HOST``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import parse_config
from bot.dev.devserver import _local_url
from bot.settings import Settings, SettingsError, load_settings
from tests.fixtures.bot import config_data

LOOPBACK = [
    "http://127.0.0.1:8787/client/v4",
    "http://127.8.9.10/api/",
    "http://localhost:3002/api/",
    "http://[::1]:3002/api/",
]
REFUSED = [
    "http://slack.com/api/",
    "http://10.0.0.5/client/v4",
    "http://[2001:db8::1]/api/",
    "http://127.0.0.1.example.com/api/",
    "slack.com/api/",
    "ftp://slack.com/api/",
    "https:///api/",
    "",
]


@pytest.mark.parametrize("name", ["SLACK_API_URL", "CLOUDFLARE_API_BASE_URL"])
def test_api_base_urls_are_https_or_loopback(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ["https://slack.com/api/", "https://10.0.0.5:8443/client/v4", *LOOPBACK]:
        monkeypatch.setenv(name, url)
        assert getattr(load_settings(), name.lower()) == url
    for url in REFUSED:
        monkeypatch.setenv(name, url)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert caught.value.problems == [
            f"{name}: '{url}' is not an https:// URL (http:// is only for a loopback address "
            "such as 127.0.0.1)"
        ]


def test_webhook_urls_follow_the_same_rule() -> None:
    for url in ["https://hooks.example.com/releases", *LOOPBACK]:
        data = config_data()
        data["webhooks"] = [{"name": "ci", "url": url, "events": ["failed"], "secret_env": "S"}]
        assert parse_config(data).webhooks[0].url == url


def test_host_defaults_to_every_interface_and_takes_addresses_and_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().host == "0.0.0.0"
    for host, kept in [
        ("127.0.0.1", "127.0.0.1"),
        ("::", "::"),
        ("bot-a.internal", "bot-a.internal"),
        ("0:0::0:1", "::1"),
    ]:
        monkeypatch.setenv("HOST", host)
        assert load_settings().host == kept
    for host in ["", "every interface", "0.0.0.0:3000", "http://0.0.0.0", "-bad.example"]:
        monkeypatch.setenv("HOST", host)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert caught.value.problems[0].startswith(f"HOST: '{host}' is not an address")


def test_run_help_names_host() -> None:
    out = CliRunner().invoke(app, ["run", "--help"], terminal_width=200).output
    assert "HOST: address to listen on" in out


def test_the_dev_consoles_reach_the_bot_where_it_listens() -> None:
    assert _local_url("127.0.0.1", 3000) == "http://127.0.0.1:3000"
    assert _local_url("0.0.0.0", 3000) == "http://127.0.0.1:3000"
    assert _local_url("::", 3000) == "http://127.0.0.1:3000"
    assert _local_url("192.168.1.20", 3000) == "http://192.168.1.20:3000"
    assert _local_url("fd00::20", 3000) == "http://[fd00::20]:3000"


def test_dev_listens_on_loopback_unless_host_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    seen: dict[str, object] = {}

    def prepare(port: int, data: object, console: bool, host: str) -> tuple[object, ...]:
        seen["host"] = host
        raise SystemExit(0)

    class Socket:
        def close(self) -> None:
            pass

    listened: list[str] = []

    def listen(host: str, port: int, what: str) -> Socket:
        listened.append(host)
        return Socket()

    monkeypatch.setattr("bot.dev.devserver.prepare", prepare)
    monkeypatch.setattr("bot.serve.listen", listen)  # no real ports: only where it would listen
    done = CliRunner().invoke(app, ["dev", "--data", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert seen["host"] == "127.0.0.1"
    # The simulators stay on loopback whatever HOST says; the bot follows HOST.
    assert listened == ["127.0.0.1", "127.0.0.1", "127.0.0.1"]
    listened.clear()
    done = CliRunner().invoke(app, ["dev", "--data", str(tmp_path)], env={"HOST": "0.0.0.0"})
    assert done.exit_code == 0, done.output
    assert seen["host"] == "0.0.0.0"
    assert listened == ["0.0.0.0", "127.0.0.1", "127.0.0.1"]
    bad = CliRunner().invoke(app, ["dev", "--data", str(tmp_path)], env={"HOST": "no such host!"})
    assert bad.exit_code == 2
    assert "HOST: 'no such host!' is not an address to listen on" in bad.output


def test_dev_makes_up_one_audit_key_per_data_folder_outside_the_database(tmp_path: Path) -> None:
    from bot.dev.devserver import dev_audit_key

    path = dev_audit_key(tmp_path / "data-a")
    again = dev_audit_key(tmp_path / "data-a")
    other = dev_audit_key(tmp_path / "data-b")
    assert path == again and path.read_text() == again.read_text()
    assert path.read_text() != other.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    settings = Settings(releasebot_audit_key_file=str(path))
    key = settings.audit_key()
    assert key is not None and settings.audit_key_problems() == []
    assert path.read_text().strip() in settings.secrets()
