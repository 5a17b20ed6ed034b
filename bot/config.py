"""The config file (``releasebot.yml``): pydantic models, loading, and errors with key paths.

Every key is documented in the README's configuration reference. Unknown keys are errors,
so a typo never silently disables a rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from pydantic_core import PydanticCustomError

from bot.durations import parse_duration
from bot.urls import https_or_loopback

MAX_CONFIG_BYTES = 1_000_000

# Error type of "approvals needed but nobody may approve", reported at `<policy>.approvers`.
_APPROVERS_MISSING = "approvers_missing"
_APPROVERS_MISSING_MSG = (
    "approvals_required is {required} but no approvers are listed; "
    "add Slack user ids (U...) or user-group ids (S...)"
)

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
SlackChannel = Annotated[str, Field(pattern=r"^[CGD][A-Z0-9]{2,}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadLimit(_Strict):
    """Read commands (status, history, versions, migrations, health, stats, plan, audit) one
    person may run in ``per``; more get a polite answer saying when to ask again."""

    commands: int = Field(default=10, ge=1, le=1000)
    per: Duration = timedelta(seconds=30)

    @field_validator("per")
    @classmethod
    def _window(cls, per: timedelta) -> timedelta:
        if per < timedelta(seconds=1):
            raise ValueError("per must be at least 1s")
        return per


class AuditCheckpoints(_Strict):
    """A signed checkpoint of the audit chain's head is posted to the audit channel after
    every ``every_records`` new records, every ``every`` (if any record came since the last
    one), and at shutdown."""

    every_records: int = Field(default=100, ge=1, le=1_000_000)
    every: Duration = timedelta(minutes=15)

    @field_validator("every")
    @classmethod
    def _period(cls, every: timedelta) -> timedelta:
        if every < timedelta(seconds=1):
            raise ValueError("every must be at least 1s")
        return every


class SlackSection(_Strict):
    command: str = Field(default="/release", pattern=r"^/[a-z0-9_\-]{1,31}$")
    release_channel: SlackChannel
    audit_channel: SlackChannel
    read_limit: ReadLimit = ReadLimit()
    audit_checkpoints: AuditCheckpoints = AuditCheckpoints()


class CloudflareRetry(_Strict):
    """How long a Cloudflare call keeps retrying (429, 5xx, timeouts) before it gives up."""

    # deployments, rollbacks, D1 restores and the reads a release's step makes
    steps: Duration = timedelta(seconds=120)
    # commands, drift checks, digests
    reads: Duration = timedelta(seconds=20)
    # a longer Retry-After ends the call at once (Cloudflare's global limit blocks 5 minutes)
    max_retry_after: Duration = timedelta(seconds=60)
    # after a deployment request timed out, how long the bot watches for it to take effect
    # before sending it again (never past the call's deadline)
    landing_window: Duration = timedelta(seconds=30)

    @model_validator(mode="after")
    def _positive(self) -> CloudflareRetry:
        for name in ("steps", "reads"):
            if getattr(self, name) < timedelta(seconds=1):
                raise ValueError(f"{name} must be at least 1s")
        return self


class CloudflareCalls(_Strict):
    """The process's budget of Cloudflare API calls (Cloudflare allows 1,200 per 5 minutes per
    user, dashboard and other tools included), and how long reads are kept."""

    per_second: float = Field(default=2.0, gt=0, le=100)
    burst: int = Field(default=20, ge=1, le=1000)
    # tokens reads may never take: kept for releases' steps and rollbacks
    reserved_for_releases: int = Field(default=5, ge=0)
    versions_cache: Duration = timedelta(seconds=5)
    deployments_cache: Duration = timedelta(seconds=2)

    @model_validator(mode="after")
    def _reserve_below_burst(self) -> CloudflareCalls:
        if self.reserved_for_releases >= self.burst:
            raise ValueError("reserved_for_releases must be less than burst")
        return self


class CloudflareSection(_Strict):
    account_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    retry: CloudflareRetry = CloudflareRetry()
    calls: CloudflareCalls = CloudflareCalls()


class Rollout(_Strict):
    steps: list[Annotated[int, Field(gt=0, le=100)]] = Field(default=[10, 50, 100], max_length=20)
    bake: Duration = timedelta(minutes=5)
    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_error_rate_ratio: float = Field(default=2.0, gt=0)
    # Fewer requests to the new version than this make error rates noise: the gate bakes
    # once more, then `on_low_traffic` decides if traffic is still that light.
    min_requests: int = Field(default=100, ge=0)
    on_low_traffic: Literal["pass", "fail"] = "pass"
    # Health probes of the environment's health_url: this many failures in a row fail the gate.
    probe_failures: int = Field(default=3, ge=1, le=100)
    probe_interval: Duration = timedelta(seconds=5)
    # The last bake, after 100%; 0 means the same as `bake`.
    verify_window: Duration = timedelta(0)

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

    @field_validator("probe_interval")
    @classmethod
    def _probes_spaced(cls, interval: timedelta) -> timedelta:
        # A zero interval would probe the health URL in a tight loop.
        if interval < timedelta(seconds=1):
            raise ValueError("probe_interval must be at least 1s")
        return interval


class GitHubSource(_Strict):
    """Where a policy's checks are read: the repository, and the environment variable that
    holds a token that may read it (never the token itself)."""

    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=200)
    token_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]


class Checks(_Strict):
    """Pre-deploy checks: read before approvals are asked for; Approve is refused until
    every one is green."""

    github: GitHubSource
    # check-run names or commit-status contexts that must be success
    required: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default=[], max_length=50
    )
    # the commit's pull request approved by someone other than its author
    review: Literal["approved"] | None = None
    # the Workers Build that made the version succeeded
    builds: Literal["success"] | None = None
    # pending checks are read again this often ...
    poll: Duration = timedelta(seconds=30)
    # ... until they settle; still pending after this long counts as failed
    settle_within: Duration = timedelta(minutes=30)
    # a break-glass (--emergency) deploy during a freeze skips them, or must pass them too
    emergency: Literal["skip", "require"] = "skip"

    @model_validator(mode="after")
    def _something_to_check(self) -> Checks:
        if not self.required and self.review is None and self.builds is None:
            raise ValueError("give at least one of required, review or builds")
        if self.poll < timedelta(seconds=1):
            raise ValueError("poll must be at least 1s")
        if self.settle_within < self.poll:
            raise ValueError("settle_within must be at least poll")
        return self


class Policy(_Strict):
    approvals_required: int = Field(default=0, ge=0, le=20)
    approvers: list[Annotated[str, Field(pattern=r"^[USW][A-Z0-9]{2,}$")]] = []
    allow_self_approval: bool = False
    approval_ttl: Duration = timedelta(hours=1)
    rollout: Rollout | None = None
    health_digest: str | None = None
    # Who may request deploys and rollbacks; unset: everyone when no approval is needed,
    # else the approvers.
    deployers: list[Annotated[str, Field(pattern=r"^[USW][A-Z0-9]{2,}$")]] | None = None
    # An environment where the same version tag must have succeeded first (e.g. staging).
    requires_success_in: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    # `/release rollback` without approvals (break-glass); False sends rollbacks through
    # the approval policy like deploys.
    rollback_without_approval: bool = True
    rollback_requires_reason: bool = False
    # Pre-deploy checks (CI, security scans, review, the Workers Build), read from GitHub.
    checks: Checks | None = None

    @model_validator(mode="after")
    def _checks_gate_approvals(self) -> Policy:
        if self.checks is not None and self.approvals_required == 0:
            raise ValueError(
                "checks gate the Approve button: a policy with checks needs approvals_required"
                " of at least 1"
            )
        return self

    @model_validator(mode="after")
    def _enough_approvers(self) -> Policy:
        if self.approvals_required and not self.approvers:
            # A custom error type lets ``parse_config`` place it at the ``approvers`` key.
            raise PydanticCustomError(
                _APPROVERS_MISSING, _APPROVERS_MISSING_MSG, {"required": self.approvals_required}
            )
        return self

    @field_validator("health_digest")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value.split()) != 5:
            raise ValueError(f"'{value}' is not a 5-field cron expression")
        # The scheduler's own parser: what passes here, `releasebot run` can schedule.
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"'{value}' is not a valid cron expression ({exc})") from None
        return value


class ValidateCheck(_Strict):
    """A query run after the migrations, and what it must answer (see
    ``bot.engine.migrations.expectation_met``)."""

    sql: str = Field(min_length=1, max_length=10_000)
    expect: Any = None


class Migrations(_Strict):
    """Where an environment's D1 migrations come from and how they are judged."""

    # "local": a folder on the bot's host holding the repository (``path``); "github": the
    # repository at the version's commit, read through GitHub's contents API (``github``, or
    # unset: the policy's ``checks.github``).
    source: Literal["local", "github"] = "local"
    path: str | None = Field(default=None, min_length=1)
    github: GitHubSource | None = None
    migrations_dir: str = Field(default="migrations", min_length=1)
    # What a statement that breaks the running version (DROP, RENAME, ...) does: "refuse"
    # the deploy, or "approve": it needs the emergency policy's approvals as well.
    destructive: Literal["refuse", "approve"] = "refuse"
    checks: list[ValidateCheck] = Field(default=[], alias="validate", max_length=20)

    @model_validator(mode="after")
    def _source_named(self) -> Migrations:
        if self.source == "local" and self.path is None:
            raise ValueError("migrations from a local folder need its 'path'")
        if self.source == "local" and self.github is not None:
            raise ValueError("'github' is for source: github; a local folder reads 'path'")
        if self.source == "github" and self.path is not None:
            raise ValueError("source: github reads the repository, not a local 'path'")
        return self

    @model_validator(mode="after")
    def _expectations(self) -> Migrations:
        for check in self.checks:
            if "expect" not in check.model_fields_set:
                raise ValueError("every validate check needs an 'expect'")
        return self


class Environment(_Strict):
    script: str = Field(pattern=r"^[a-z0-9_][a-z0-9-_]*$", max_length=63)
    policy: str
    health_url: str | None = Field(default=None, pattern=r"^https?://")
    # Where the Worker's health answer says which version served it (its version-metadata
    # binding's id): a response header, and/or a dotted field of its JSON body. Without
    # either the smoke test cannot confirm that the new version answered.
    version_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    version_field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    d1_database_id: str | None = None
    # The GitHub repository (owner/name) the environment's code lives in, where its policy's
    # checks are read; unset: the policy's checks.github.repository.
    repository: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=200
    )
    migrations: Migrations | None = None

    @model_validator(mode="after")
    def _migrations_need_a_database(self) -> Environment:
        if self.migrations is not None and not self.d1_database_id:
            raise ValueError("migrations need the environment's d1_database_id")
        return self


class Service(_Strict):
    environments: dict[str, Environment] = Field(min_length=1)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class Freeze(_Strict):
    """A recurring (``days``) or one-off (``start``..``end``) window without deploys."""

    name: str = Field(min_length=1, max_length=80)
    environments: list[str] = Field(min_length=1)
    days: list[Weekday] | None = None
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_form(self) -> Freeze:
        weekly = self.days is not None
        window = self.start is not None or self.end is not None
        if weekly == window:
            raise ValueError("give either days (weekly) or start and end (a window)")
        if window and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("a window needs start before end")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone '{self.timezone}'") from None
        return self


WebhookEvent = Literal["requested", "approved", "step", "succeeded", "rolled_back", "failed"]
EnvVarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]


class Webhook(_Strict):
    """An outgoing webhook: release events POSTed as JSON, signed as Standard Webhooks says
    (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``; see bot.webhooks.sender).

    Secrets never live in the config file: ``secret_env`` and ``routing_key_env`` name the
    environment variables that hold them. ``secret_env``'s value is a ``whsec_`` secret (several,
    space separated, newest first, during a rotation), or a plain secret from before.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=63)
    url: str = Field(pattern=r"^https?://[^\s/]+\S*$", max_length=2000)
    events: list[WebhookEvent] = Field(min_length=1)
    secret_env: EnvVarName
    # "pagerduty": automatic rollbacks as PagerDuty Events v2 triggers (see bot.webhooks).
    format: Literal["releasebot", "pagerduty"] = "releasebot"
    routing_key_env: EnvVarName | None = None
    timeout: Duration = timedelta(seconds=5)
    max_attempts: int = Field(default=8, ge=1, le=50)

    @field_validator("url")
    @classmethod
    def _https(cls, url: str) -> str:
        return https_or_loopback(url)

    @field_validator("timeout")
    @classmethod
    def _sensible_timeout(cls, timeout: timedelta) -> timedelta:
        if timeout <= timedelta(0):
            raise ValueError("timeout must be more than 0s")
        if timeout > timedelta(seconds=60):
            raise ValueError("timeout must be at most 60s")
        return timeout


class Config(_Strict):
    slack: SlackSection
    cloudflare: CloudflareSection
    policies: dict[str, Policy] = Field(min_length=1)
    services: dict[str, Service] = Field(min_length=1)
    freezes: list[Freeze] = Field(default=[], max_length=100)
    # The policy whose approvals an emergency (break-glass) deploy during a freeze needs;
    # unset: `production` when such a policy exists, else the environment's own.
    emergency_policy: str | None = None
    # Outgoing webhooks (release events for other tools; PagerDuty on automatic rollbacks).
    webhooks: list[Webhook] = Field(default=[], max_length=50)

    def emergency_policy_name(self, env_policy: str) -> str:
        if self.emergency_policy:
            return self.emergency_policy
        return "production" if "production" in self.policies else env_policy

    def environment(self, service: str, env: str | None) -> tuple[str, Environment]:
        """The named environment, or the service's first one; KeyError when unknown."""
        svc = self.services[service]
        name = env or next(iter(svc.environments))
        return name, svc.environments[name]

    def policy_for(self, service: str, env: str) -> Policy:
        return self.policies[self.services[service].environments[env].policy]

    def cross_check(self) -> list[tuple[str, str]]:
        """Problems that span sections, as (key path, message)."""
        refs = (
            (svc_name, env_name, env.policy)
            for svc_name, svc in self.services.items()
            for env_name, env in svc.environments.items()
        )
        problems = _unknown_policies(self.policies, refs)
        if self.emergency_policy and self.emergency_policy not in self.policies:
            problems.append(("emergency_policy", f"unknown policy '{self.emergency_policy}'"))
        env_names = {e for svc in self.services.values() for e in svc.environments}
        for name, policy in self.policies.items():
            if policy.requires_success_in and policy.requires_success_in not in env_names:
                problems.append(
                    (
                        f"policies.{name}.requires_success_in",
                        f"no service has an environment '{policy.requires_success_in}'",
                    )
                )
        for i, freeze in enumerate(self.freezes):
            for env in freeze.environments:
                if env not in env_names:
                    problems.append(
                        (f"freezes.{i}.environments", f"no service has an environment '{env}'")
                    )
        for svc_name, svc in self.services.items():
            for env_name, environment in svc.environments.items():
                source = self.migrations_github(svc_name, env_name)
                wanted = environment.migrations
                if wanted is not None and wanted.source == "github" and source is None:
                    problems.append(
                        (
                            f"services.{svc_name}.environments.{env_name}.migrations.github",
                            "source: github needs 'github' (repository, token_env) here or in "
                            f"the policy's checks ('{environment.policy}' has none)",
                        )
                    )
        problems += _webhook_problems([w.model_dump() for w in self.webhooks])
        return problems

    def diff_github(self, service: str, env: str) -> GitHubSource | None:
        """Where the diff reads an environment's commits: its policy's ``checks.github``
        (with the environment's ``repository`` when set), else its migrations' GitHub."""
        environment = self.services[service].environments[env]
        policy = self.policies.get(environment.policy)
        if policy is not None and policy.checks is not None:
            found = policy.checks.github
            if environment.repository:
                return found.model_copy(update={"repository": environment.repository})
            return found
        return self.migrations_github(service, env)

    def migrations_github(self, service: str, env: str) -> GitHubSource | None:
        """Where an environment's migrations are read on GitHub: its own ``migrations.github``,
        else its policy's ``checks.github`` (with the environment's ``repository`` when set);
        None for a local folder or when neither names one."""
        environment = self.services[service].environments[env]
        if environment.migrations is None or environment.migrations.source != "github":
            return None
        if environment.migrations.github is not None:
            return environment.migrations.github
        policy = self.policies.get(environment.policy)
        if policy is None or policy.checks is None:
            return None
        found = policy.checks.github
        if environment.repository:
            return found.model_copy(update={"repository": environment.repository})
        return found


def _webhook_problems(webhooks: Any) -> list[tuple[str, str]]:
    """Checks across one webhook's keys or across webhooks, on validated or raw data."""
    if not isinstance(webhooks, list):
        return []
    problems = []
    seen: set[str] = set()
    for i, hook in enumerate(webhooks):
        if not isinstance(hook, dict):
            continue
        name = hook.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append((f"webhooks.{i}.name", f"another webhook is named '{name}'"))
            seen.add(name)
        pagerduty = hook.get("format") == "pagerduty"
        if pagerduty and not hook.get("routing_key_env"):
            problems.append(
                (
                    f"webhooks.{i}.routing_key_env",
                    "the pagerduty format needs routing_key_env: the name of the environment "
                    "variable holding the Events v2 routing key",
                )
            )
        if not pagerduty and hook.get("routing_key_env"):
            problems.append(
                (f"webhooks.{i}.routing_key_env", "only the pagerduty format uses a routing key")
            )
        events = hook.get("events")
        if pagerduty and isinstance(events, list):
            others = [e for e in events if e != "rolled_back"]
            if others:
                problems.append(
                    (
                        f"webhooks.{i}.events",
                        "the pagerduty format sends only rolled_back events "
                        f"(remove {', '.join(str(e) for e in others)})",
                    )
                )
    return problems


def _unknown_policies(
    policies: Collection[str], refs: Iterable[tuple[str, str, str]]
) -> list[tuple[str, str]]:
    """(key path, message) for each (service, environment, policy) naming no known policy."""
    known = ", ".join(sorted(str(name) for name in policies)) or "none"
    return [
        (
            f"services.{svc}.environments.{env}.policy",
            f"unknown policy '{policy}' (known: {known})",
        )
        for svc, env, policy in refs
        if policy not in policies
    ]


def _raw_checks(data: dict[Any, Any]) -> list[tuple[str, str]]:
    """The checks that need a whole policy or the whole file, run on unvalidated data.

    Pydantic skips a model's own checks when one of its keys is wrong, and there is no
    ``Config`` to cross-check when any key is wrong; these run regardless, so one pass shows
    everything to fix. Parts too malformed to read are skipped: validation reports them.
    """
    policies = data.get("policies")
    services = data.get("services")
    problems = _webhook_problems(data.get("webhooks"))
    if isinstance(policies, dict):
        for name, policy in policies.items():
            if not isinstance(policy, dict):
                continue
            required = policy.get("approvals_required")
            if (
                isinstance(required, int)
                and not isinstance(required, bool)
                and required > 0
                and not policy.get("approvers")
            ):
                message = _APPROVERS_MISSING_MSG.format(required=required)
                problems.append((f"policies.{name}.approvers", message))
    if not isinstance(policies, dict) or not isinstance(services, dict):
        return problems
    refs = []
    for svc_name, svc in services.items():
        envs = svc.get("environments") if isinstance(svc, dict) else None
        if not isinstance(envs, dict):
            continue
        for env_name, env in envs.items():
            policy = env.get("policy") if isinstance(env, dict) else None
            if isinstance(policy, str):
                refs.append((str(svc_name), str(env_name), policy))
    return problems + _unknown_policies(policies, refs)


class ConfigError(Exception):
    """The config file cannot be used; ``problems`` are lines like ``file: key.path: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# What a value of a pattern-checked key should look like, by key name.
_PATTERN_HINTS = {
    "command": "a slash command like /release (lowercase letters, digits, - and _)",
    "release_channel": "a Slack channel id like C0123ABCD",
    "audit_channel": "a Slack channel id like C0123ABCD",
    "account_id": "a Cloudflare account id: 32 lowercase hex characters",
    "approvers": "a Slack user id (U... or W...) or user-group id (S...)",
    "script": "a Worker script name (lowercase letters, digits, - and _)",
    "health_url": "an http:// or https:// URL",
    "version_header": "an HTTP header name like X-Worker-Version",
    "version_field": "a JSON field, dotted for nesting, like version.id",
    "url": "an http:// or https:// URL",
    "name": "a webhook name (lowercase letters, digits, - and _)",
    "secret_env": "an environment variable name like RELEASEBOT_WEBHOOK_SECRET",
    "routing_key_env": "an environment variable name like PAGERDUTY_ROUTING_KEY",
}
# Error types whose message reads better with the offending value shown.
_SHOW_VALUE = {
    "bool_parsing",
    "bool_type",
    "float_parsing",
    "float_type",
    "greater_than",
    "greater_than_equal",
    "int_from_float",
    "int_parsing",
    "int_type",
    "less_than",
    "less_than_equal",
    "list_type",
    "string_too_long",
    "string_type",
}
# Error types saying a mapping was expected.
_MAPPING_ERRORS = {"dict_type", "model_type", "model_attributes_type"}


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _shown(value: Any) -> str:
    """A short rendering of an offending value, or "" when it is not worth showing."""
    if isinstance(value, str | int | float | bool) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return ""


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in _MAPPING_ERRORS:
        got = "nothing" if value is None else type(value).__name__
        return f"expected a mapping of keys, got {got}"
    if kind == "string_pattern_mismatch":
        keys = [part for part in error["loc"] if isinstance(part, str)]
        hint = _PATTERN_HINTS.get(keys[-1]) if keys else None
        if hint:
            return f"{_shown(value)} is not {hint}"
    msg = str(error["msg"]).removeprefix("Value error, ")
    shown = _shown(value)
    if kind in _SHOW_VALUE and shown:
        msg = f"{msg} (got {shown})"
    return msg


def _problem(source: str, error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    if error["type"] == _APPROVERS_MISSING:
        loc += ("approvers",)
    return f"{source}: {_path(loc)}: {_message(error)}"


def parse_config(data: Any, source: str = "releasebot.yml") -> Config:
    """Validate already-loaded YAML data; ``ConfigError`` lists every problem.

    Each problem is one line, ``source: key.path: message``. Checks that span sections (an
    environment naming an unknown policy) run even when other keys are wrong, so one run of
    ``releasebot config check`` shows everything to fix.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            [
                f"{source}: (top level): expected a mapping with the sections "
                "slack, cloudflare, policies and services"
            ]
        )
    problems: list[str] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(source, dict(e)) for e in exc.errors()]
    if config is not None:
        problems += [f"{source}: {path}: {msg}" for path, msg in config.cross_check()]
    else:
        for path, msg in _raw_checks(data):
            line = f"{source}: {path}: {msg}"
            if line not in problems:  # the model's own check may have reported it already
                problems.append(line)
    if problems or config is None:
        raise ConfigError(problems)
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping.

    Plain YAML keeps the last of two equal keys, which would silently drop a rule.
    Keys brought in with a ``<<`` merge may still be overridden, as YAML intends.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key '{key}'",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


MAX_EXPANDED_NODES = 50_000


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes the document has once every alias is expanded, computed without
    expanding (each node is sized once), so an anchor bomb is measured, not built."""
    known = memo.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = min(size, MAX_EXPANDED_NODES + 1)
    return memo[id(node)]


def _load_bounded(raw: bytes, source: str) -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand beyond a sane size
    (the "billion laughs"), before anything is built from them."""
    loader = _UniqueKeyLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise ConfigError(
                [
                    f"{source}: (yaml): the document expands to more than "
                    f"{MAX_EXPANDED_NODES:,} values through its anchors and aliases; "
                    "a release config is far smaller"
                ]
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


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
        data = _load_bounded(raw, str(p))
    except yaml.reader.ReaderError as exc:
        # Bytes that do not decode, or control characters: there is no line to point at yet.
        raise ConfigError(
            [f"{p}: (yaml): not plain UTF-8 text ({exc.reason}, at position {exc.position})"]
        ) from None
    except RecursionError:
        raise ConfigError([f"{p}: (yaml): nested too deeply to read"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        # PyYAML's context says what was open, e.g. "while parsing a flow sequence" + its start.
        context = getattr(exc, "context", None)
        context_mark = getattr(exc, "context_mark", None)
        if context and context_mark and (not mark or context_mark.line != mark.line):
            problem += f" ({context} from line {context_mark.line + 1})"
        raise ConfigError([f"{p}: (yaml){where}: {problem}"]) from None
    if data is None:
        raise ConfigError([f"{p}: the config file is empty (or holds only comments)"])
    return parse_config(data, str(p))
