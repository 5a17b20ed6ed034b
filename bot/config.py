"""The config file (``releasebot.yml``): pydantic models, loading, and errors with key paths.

Every key is documented in the README's configuration reference. Unknown keys are errors,
so a typo never silently disables a rule.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.durations import parse_duration

MAX_CONFIG_BYTES = 1_000_000

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
SlackChannel = Annotated[str, Field(pattern=r"^[CGD][A-Z0-9]{2,}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackSection(_Strict):
    command: str = Field(default="/release", pattern=r"^/[a-z0-9_\-]{1,31}$")
    release_channel: SlackChannel
    audit_channel: SlackChannel


class CloudflareSection(_Strict):
    account_id: str = Field(pattern=r"^[0-9a-f]{32}$")


class Rollout(_Strict):
    steps: list[Annotated[int, Field(gt=0, le=100)]] = Field(default=[10, 50, 100], max_length=20)
    bake: Duration = timedelta(minutes=5)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_error_rate_ratio: float = Field(default=2.0, gt=0)

    @field_validator("steps")
    @classmethod
    def _steps_rise_to_100(cls, steps: list[int]) -> list[int]:
        if not steps:
            raise ValueError("needs at least one step")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("steps must rise, e.g. [10, 50, 100]")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100")
        return steps


class Policy(_Strict):
    approvals_required: int = Field(default=0, ge=0, le=20)
    approvers: list[Annotated[str, Field(pattern=r"^[USW][A-Z0-9]{2,}$")]] = []
    allow_self_approval: bool = False
    approval_ttl: Duration = timedelta(hours=1)
    rollout: Rollout | None = None
    health_digest: str | None = None

    @model_validator(mode="after")
    def _enough_approvers(self) -> Policy:
        if self.approvals_required and not self.approvers:
            raise ValueError("approvals_required > 0 needs a list of approvers")
        return self

    @field_validator("health_digest")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"'{value}' is not a 5-field cron expression")
        return value


class Environment(_Strict):
    script: str = Field(pattern=r"^[a-z0-9_][a-z0-9-_]*$", max_length=63)
    policy: str
    health_url: str | None = Field(default=None, pattern=r"^https?://")
    d1_database_id: str | None = None


class Service(_Strict):
    environments: dict[str, Environment] = Field(min_length=1)


class Config(_Strict):
    slack: SlackSection
    cloudflare: CloudflareSection
    policies: dict[str, Policy] = Field(min_length=1)
    services: dict[str, Service] = Field(min_length=1)

    def environment(self, service: str, env: str | None) -> tuple[str, Environment]:
        """The named environment, or the service's first one; KeyError when unknown."""
        svc = self.services[service]
        name = env or next(iter(svc.environments))
        return name, svc.environments[name]

    def policy_for(self, service: str, env: str) -> Policy:
        return self.policies[self.services[service].environments[env].policy]

    def cross_check(self) -> list[tuple[str, str]]:
        """Problems that span sections, as (key path, message)."""
        problems = []
        for svc_name, svc in self.services.items():
            for env_name, env in svc.environments.items():
                if env.policy not in self.policies:
                    known = ", ".join(sorted(self.policies))
                    problems.append(
                        (
                            f"services.{svc_name}.environments.{env_name}.policy",
                            f"unknown policy '{env.policy}' (known: {known})",
                        )
                    )
        return problems


class ConfigError(Exception):
    """The config file cannot be used; ``problems`` are lines like ``file: key.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def parse_config(data: Any, source: str = "releasebot.yml") -> Config:
    """Validate already-loaded YAML data; ``ConfigError`` lists every problem."""
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: (top level): expected a mapping of sections"])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [f"{source}: {_path(e['loc'])}: {_message(dict(e))}" for e in exc.errors()]
        raise ConfigError(problems) from None
    cross = config.cross_check()
    if cross:
        raise ConfigError([f"{source}: {path}: {msg}" for path, msg in cross])
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate the config file at ``path``."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read the config file ({exc.strerror})"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{p}: the config file is larger than {MAX_CONFIG_BYTES} bytes"])
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{p}: (yaml){where}: {problem}"]) from None
    return parse_config(data, str(p))
