"""Process settings from the environment: the only place environment variables are read."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.urls import https_or_loopback

if TYPE_CHECKING:
    from storage.audit_keys import AuditKey

_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def listen_address(host: str) -> str:
    """``host`` when it is an IP address or a host name to listen on; else ValueError."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if _HOST_NAME.fullmatch(host):
        return host
    raise ValueError(
        f"'{host}' is not an address to listen on: use 0.0.0.0 (every interface), "
        "127.0.0.1 (this machine only), or one of this machine's addresses"
    )


class Settings(BaseSettings):
    """Built once at start and passed in; secrets stay ``SecretStr`` until the moment of use."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    cloudflare_api_token: SecretStr | None = None
    cloudflare_api_base_url: str = "https://api.cloudflare.com/client/v4"
    # GitHub's REST base, for pre-deploy checks, diffs and migration files (a token per
    # repository is named in the config by `checks.github.token_env`).
    github_api_url: str = "https://api.github.com"
    database_url: str = "sqlite:///./releasebot.db"
    releasebot_config: str = "./releasebot.yml"
    # The address to listen on: every interface by default (as a container must); `releasebot
    # dev` listens on 127.0.0.1 unless HOST says otherwise.
    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=1, le=65535)
    # When set, /metrics is served on this port alone (and no longer on PORT).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = (
        "INFO"
    )
    log_format: Literal["json", "console"] = "json"
    # Seconds between checks for deployments made outside the bot (0: never).
    releasebot_drift_interval: float = Field(default=60.0, ge=0)
    # The audit chain's HMAC key (a value, or @/path/to/file), or a file holding it; never
    # stored in the database. RELEASEBOT_AUDIT_KEYS adds older keys for `audit verify` after a
    # rotation (comma-separated, each a value or @path).
    releasebot_audit_key: SecretStr | None = None
    releasebot_audit_key_file: str | None = None
    releasebot_audit_keys: SecretStr | None = None

    @field_validator("slack_api_url", "cloudflare_api_base_url", "github_api_url")
    @classmethod
    def _https(cls, url: str) -> str:
        return https_or_loopback(url)

    @field_validator("host")
    @classmethod
    def _address(cls, host: str) -> str:
        return listen_address(host)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError:
            raise ValueError(
                "not a database URL: use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
            ) from None
        if backend not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(
                f"unsupported scheme '{backend}': use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST:PORT/DB"
            )
        return url

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def problems_for_run(self) -> list[str]:
        """What stops ``releasebot run``, one line each, naming the variable."""
        problems = []
        bot = self.slack_bot_token.get_secret_value() if self.slack_bot_token else ""
        if not bot:
            problems.append("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)")
        elif not bot.startswith("xoxb-"):
            problems.append("SLACK_BOT_TOKEN does not look like a bot token (expected xoxb-...)")
        if self.socket_mode:
            app = self.slack_app_token.get_secret_value() if self.slack_app_token else ""
            if not app.startswith("xapp-"):
                problems.append(
                    "SLACK_APP_TOKEN does not look like an app token (expected xapp-...)"
                )
        elif not self.slack_signing_secret or not self.slack_signing_secret.get_secret_value():
            problems.append("SLACK_SIGNING_SECRET is not set (needed in HTTP mode)")
        if not self.cloudflare_api_token or not self.cloudflare_api_token.get_secret_value():
            problems.append("CLOUDFLARE_API_TOKEN is not set")
        if self.metrics_port is not None and self.metrics_port == self.port:
            problems.append("METRICS_PORT must differ from PORT (or be unset)")
        problems.extend(self.audit_key_problems())
        return problems

    def audit_key(self) -> AuditKey | None:
        """The key new audit records are made with, or None when none is set; AuditKeyError
        (its message naming the variable) when the key cannot be read or is too short."""
        from storage.audit_keys import AuditKey, AuditKeyError, read_key_file, read_key_text

        value = self.releasebot_audit_key.get_secret_value() if self.releasebot_audit_key else ""
        try:
            if value:
                return AuditKey(read_key_text(value))
            if self.releasebot_audit_key_file:
                return AuditKey(read_key_file(self.releasebot_audit_key_file))
        except AuditKeyError as exc:
            name = "RELEASEBOT_AUDIT_KEY" if value else "RELEASEBOT_AUDIT_KEY_FILE"
            raise AuditKeyError(f"{name}: {exc}") from None
        return None

    def audit_keys(self) -> list[AuditKey]:
        """Every key set (the current one first, then RELEASEBOT_AUDIT_KEYS), for verifying."""
        from storage.audit_keys import AuditKeyError, load_key

        keys = [key] if (key := self.audit_key()) is not None else []
        more = self.releasebot_audit_keys.get_secret_value() if self.releasebot_audit_keys else ""
        for part in more.split(","):
            if part.strip():
                try:
                    keys.append(load_key(part.strip()))
                except AuditKeyError as exc:
                    raise AuditKeyError(f"RELEASEBOT_AUDIT_KEYS: {exc}") from None
        return keys

    def audit_key_problems(self) -> list[str]:
        """What is wrong with the audit key setting for ``run`` (it is required)."""
        from storage.audit_keys import AuditKeyError

        try:
            if self.audit_key() is None:
                return [
                    "RELEASEBOT_AUDIT_KEY is not set (the audit chain's HMAC key: a value, or "
                    "@/path/to/file; or RELEASEBOT_AUDIT_KEY_FILE=/path/to/file)"
                ]
        except AuditKeyError as exc:
            return [str(exc)]
        return []

    def secrets(self) -> list[str]:
        """The secret values, for scrubbing anything that might echo them."""
        values = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.cloudflare_api_token,
        ]
        found = [v.get_secret_value() for v in values if v and v.get_secret_value()]
        return found + self._audit_key_texts()

    def _audit_key_texts(self) -> list[str]:
        from storage.audit_keys import AuditKeyError, read_key_file, read_key_text

        texts = []
        for value in (self.releasebot_audit_key, self.releasebot_audit_keys):
            for part in (value.get_secret_value() if value else "").split(","):
                if part.strip():
                    # The value itself, with and without its "@": if it is not a path after
                    # all but a key that starts with "@", it is scrubbed either way.
                    texts.append(part.strip())
                    texts.append(part.strip().removeprefix("@"))
                    with contextlib.suppress(AuditKeyError, UnicodeDecodeError):
                        texts.append(read_key_text(part.strip()).decode("utf-8"))
        if self.releasebot_audit_key_file:
            with contextlib.suppress(AuditKeyError, UnicodeDecodeError):
                texts.append(read_key_file(self.releasebot_audit_key_file).decode("utf-8"))
        return [t for t in dict.fromkeys(texts) if len(t) >= 8]


def secret_from_env(name: str) -> SecretStr | None:
    """The secret held by the environment variable ``name``, or None when it is unset or empty.

    For secrets the config file names instead of holding (a webhook's ``secret_env``, a
    PagerDuty ``routing_key_env``); read once at start, like the settings above.
    """
    value = os.environ.get(name, "")
    return SecretStr(value) if value else None


# Every environment variable the settings read, with what it means (for ``run --help``; the
# README's environment table says the same at length).
ENVIRONMENT: dict[str, str] = {
    "SLACK_BOT_TOKEN": "xoxb-... bot token (required)",
    "SLACK_SIGNING_SECRET": "verifies Slack's requests (required in HTTP mode)",
    "SLACK_APP_TOKEN": "xapp-... app token; when set, Socket Mode",
    "SLACK_API_URL": "Slack Web API base URL (https://, or http:// to loopback)",
    "CLOUDFLARE_API_TOKEN": "Cloudflare API token (required)",
    "CLOUDFLARE_API_BASE_URL": "Cloudflare REST base URL (https://, or http:// to loopback)",
    "GITHUB_API_URL": "GitHub REST base URL for checks (https://, or http:// to loopback)",
    "DATABASE_URL": "sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
    "RELEASEBOT_CONFIG": "the config file",
    "HOST": "address to listen on (default 0.0.0.0; releasebot dev: 127.0.0.1)",
    "PORT": "HTTP port (Slack's requests, /healthz, /readyz)",
    "METRICS_PORT": "serve /metrics on this port instead of PORT",
    "LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR",
    "LOG_FORMAT": "json or console",
    "RELEASEBOT_DRIFT_INTERVAL": "seconds between drift checks (0: never)",
    "RELEASEBOT_AUDIT_KEY": "the audit chain's HMAC key, a value or @/path/to/file (required)",
    "RELEASEBOT_AUDIT_KEY_FILE": "a file holding the audit key (instead of RELEASEBOT_AUDIT_KEY)",
    "RELEASEBOT_AUDIT_KEYS": "older audit keys for audit verify after a rotation (comma-separated)",
}


class SettingsError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_settings() -> Settings:
    """Read the environment; ``SettingsError`` lists each malformed variable by name."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "environment"
            problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise SettingsError(problems) from None
