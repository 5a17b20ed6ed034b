"""Records of the simulated account, and how each looks in the Cloudflare API."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.cloudflare.sim_d1 import SqlDatabase

DEFAULT_ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
DEPLOYABLE_VERSIONS = 100  # only the newest 100 versions can be deployed or rolled back to
SCRIPT_NAME = re.compile(r"^[a-z0-9_][a-z0-9-_]*$")


class SimError(ValueError):
    """A test or the console asked for something impossible (unknown script, bad split)."""


class ApiError(Exception):
    """An API refusal: HTTP ``status`` with one Cloudflare error ``code`` and ``message``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def api_time(value: datetime) -> str:
    """Cloudflare's timestamp form: UTC, microseconds, ``Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_split(pairs: list[tuple[str, float]]) -> str | None:
    """Why ``pairs`` is not a deployable split, or None: one or two distinct versions, each
    0-100%, together 100 (± 0.001).

    A version at 0% is part of the deployment without any share of traffic: Cloudflare's
    smoke-test recipe deploys the new version so (version-overrides docs), and
    ``wrangler versions deploy new@0% old@100%`` sends ``"percentage": 0`` as given. The
    2024 schema's ``minimum: 0.01`` disagrees; ``contract_additions.json`` corrects it."""
    if len(pairs) not in (1, 2):
        return f"a deployment must reference one or two versions, got {len(pairs)}"
    if len({vid for vid, _ in pairs}) != len(pairs):
        return "a deployment cannot reference the same version twice"
    for vid, pct in pairs:
        if not 0 <= pct <= 100:
            return f"percentage {pct:g} of version {vid} is outside 0-100"
    total = sum(pct for _, pct in pairs)
    if abs(total - 100) > 0.001:
        return f"version percentages must add up to 100, got {total:g}"
    return None


@dataclass
class SimVersion:
    id: str
    number: int
    created_on: datetime
    author_email: str
    author_id: str
    source: str
    tag: str | None = None
    message: str | None = None
    # What was uploaded; its SHA-256 is the version's ``resources.script.etag``, so the same
    # build uploaded to two scripts has one etag and a rebuilt tag has another.
    content: str = ""
    error_rate: float = 0.0
    healthy: bool = True
    # Whether the Worker says which version answered (its version-metadata binding's id in
    # the health response); Cloudflare itself does not.
    reports_version: bool = True
    # The Durable Object migration tag the version was uploaded with; a rollback across a
    # migration is refused.
    migration_tag: str | None = None
    # Bindings to account resources: {"type", "name", "id"}; "id" names the KV namespace,
    # R2 bucket or queue (a deleted one makes the version undeployable).
    bindings: list[dict[str, str]] = field(default_factory=list)
    cpu_p50_us: float = 800.0
    cpu_p99_us: float = 3200.0
    # what made it (workers/triggered_by): "upload", or "secret" for a secret change
    triggered_by: str = "upload"
    # what the version detail's script_runtime says, and its secrets (names only)
    compatibility_date: str = "2024-09-23"
    compatibility_flags: list[str] = field(default_factory=lambda: ["nodejs_compat"])
    usage_model: str = "standard"
    secrets: list[str] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        """A versions-list item: ``annotations`` sit beside ``metadata``, as in the live API."""
        annotations = {}
        if self.tag is not None:
            annotations["workers/tag"] = self.tag
        if self.message is not None:
            annotations["workers/message"] = self.message
        annotations["workers/triggered_by"] = self.triggered_by
        return {
            "id": self.id,
            "number": self.number,
            "metadata": {
                "author_email": self.author_email,
                "author_id": self.author_id,
                "created_on": api_time(self.created_on),
                "modified_on": api_time(self.created_on),
                "source": self.source,
            },
            "annotations": annotations,
        }

    def to_api_full(self) -> dict[str, Any]:
        """The version detail: the list item plus ``resources``."""
        return {
            **self.to_api(),
            "resources": {
                "bindings": [
                    *(_binding_to_api(b) for b in self.bindings),
                    *({"type": "secret_text", "name": n} for n in self.secrets),
                ],
                "script": {
                    "etag": hashlib.sha256(self.content.encode()).hexdigest(),
                    "handlers": ["fetch"],
                    "last_deployed_from": self.source,
                },
                "script_runtime": {
                    "compatibility_date": self.compatibility_date,
                    "compatibility_flags": list(self.compatibility_flags),
                    "usage_model": self.usage_model,
                    **({"migration_tag": self.migration_tag} if self.migration_tag else {}),
                },
            },
        }

    def to_console(self) -> dict[str, Any]:
        """The console's view: the API item plus the simulated behaviour knobs."""
        return {
            **self.to_api(),
            "error_rate": self.error_rate,
            "healthy": self.healthy,
            "reports_version": self.reports_version,
        }


# the field naming a binding's resource, by binding type (as in the version detail)
RESOURCE_FIELD = {"kv_namespace": "namespace_id", "r2_bucket": "bucket_name", "queue": "queue_name"}


def _binding_to_api(binding: dict[str, str]) -> dict[str, str]:
    kind = binding["type"]
    return {"type": kind, "name": binding["name"], RESOURCE_FIELD.get(kind, "id"): binding["id"]}


@dataclass
class SimBuild:
    """A Workers Build that made a version: its commit, branch, repository and outcome
    (``success``, ``fail``, ``skipped``, ``cancelled``, ``terminated``; None while running)."""

    version_id: str
    uuid: str
    created_on: datetime
    commit_hash: str
    branch: str
    repo_name: str
    provider_account_name: str
    author: str
    commit_message: str
    outcome: str | None = "success"
    pull_request_url: str | None = None

    def to_api(self) -> dict[str, Any]:
        done = self.outcome is not None
        return {
            "build_uuid": self.uuid,
            "status": "stopped" if done else "running",
            "build_outcome": self.outcome,
            "created_on": api_time(self.created_on),
            "modified_on": api_time(self.created_on),
            "initializing_on": api_time(self.created_on),
            "running_on": api_time(self.created_on),
            "stopped_on": api_time(self.created_on) if done else None,
            "build_trigger_metadata": {
                "author": self.author,
                "branch": self.branch,
                "build_command": "npm run build",
                "build_trigger_source": "push_event",
                "commit_hash": self.commit_hash,
                "commit_message": self.commit_message,
                "deploy_command": "npx wrangler versions upload",
                "environment_variables": {},
                "provider_account_name": self.provider_account_name,
                "provider_type": "github",
                "repo_name": self.repo_name,
                "root_directory": "/",
            },
            "pull_request": (
                {"created_on": api_time(self.created_on), "pull_request_url": self.pull_request_url}
                if self.pull_request_url
                else None
            ),
        }


@dataclass
class SimDeployment:
    id: str
    created_on: datetime
    source: str
    author_email: str
    versions: list[tuple[str, float]]
    message: str | None = None

    @property
    def stable_version_id(self) -> str | None:
        if len(self.versions) == 1 and self.versions[0][1] >= 100:
            return self.versions[0][0]
        return None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_on": api_time(self.created_on),
            "source": self.source,
            "strategy": "percentage",
            "author_email": self.author_email,
            "annotations": {"workers/message": self.message} if self.message else {},
            "versions": [
                {"version_id": vid, "percentage": int(pct) if pct.is_integer() else pct}
                for vid, pct in self.versions
            ],
        }


@dataclass
class SimScript:
    name: str
    versions: list[SimVersion] = field(default_factory=list)  # oldest first
    deployments: list[SimDeployment] = field(default_factory=list)  # newest first
    traffic_rps: float = 10.0
    secrets_changed_at: int = 0  # versions numbered up to this need force
    changed_secrets: list[str] = field(default_factory=list)
    probes: int = 0  # fake Worker requests so far, to spread them over a split

    @property
    def active(self) -> SimDeployment | None:
        return self.deployments[0] if self.deployments else None

    def find(self, version_id: str) -> SimVersion | None:
        for v in self.versions:
            if v.id == version_id:
                return v
        return None

    def summary(self) -> dict[str, Any]:
        active = self.active
        return {
            "name": self.name,
            "traffic_rps": self.traffic_rps,
            "versions": len(self.versions),
            "active": active.to_api() if active else None,
        }


@dataclass
class SimDatabase:
    """A D1 database: a real SQLite database (``sql``) and its Time Travel history, each
    bookmark with a copy of the database as it was then."""

    id: str
    name: str
    created_at: datetime
    seq: int
    history: list[tuple[datetime, str]]  # (when, bookmark), oldest first
    sql: SqlDatabase = field(default_factory=SqlDatabase)
    images: dict[str, bytes] = field(default_factory=dict)  # bookmark -> the database then
    restored_at: list[datetime] = field(default_factory=list)  # each Time Travel restore

    def __post_init__(self) -> None:
        for _, bookmark in self.history:
            self.images.setdefault(bookmark, self.sql.snapshot())

    @property
    def current(self) -> str:
        return self.history[-1][1]

    def advance(self, at: datetime, bookmark: str) -> str:
        """A new current bookmark, keeping the database as it is now under it."""
        self.seq += 1
        self.history.append((at, bookmark))
        self.images[bookmark] = self.sql.snapshot()
        return bookmark

    def bookmark_at(self, at: datetime) -> str | None:
        """The newest bookmark at or before ``at``."""
        found = None
        for when, bookmark in self.history:
            if when <= at:
                found = bookmark
        return found

    def load(self, bookmark: str) -> None:
        """Put the database back as it was at ``bookmark``."""
        self.sql.load(self.images[bookmark])

    def to_api(self) -> dict[str, Any]:
        return {
            "uuid": self.id,
            "name": self.name,
            "version": "production",
            "created_at": api_time(self.created_at),
            "file_size": self.sql.size(),
            "num_tables": self.sql.num_tables(),
        }


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None
    remaining: int
    retry_after: float | None = None
    delay: float = 0.0
    apply_first: bool = False
    code: int | None = None
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and self.pattern.search(path) is not None

    def body(self) -> dict[str, Any]:
        """The failure envelope the fault answers with."""
        if self.status == 429:
            # Cloudflare's rate limiter. Live answers have been reported with code 971, below
            # the contract's minimum of 1000 for error codes, and with 10429; the simulator
            # keeps to the contract.
            code = 10429
            text = "Rate limited. Please wait and consider throttling your request speed"
        elif self.status is not None and self.status >= 500:
            code, text = 10002, "An internal error occurred"
        else:
            code, text = 10021, "Simulated failure"
        return {
            "success": False,
            "errors": [{"code": self.code or code, "message": self.message or text}],
            "messages": [],
            "result": None,
        }

    def to_console(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path_regex": self.pattern.pattern,
            "status": self.status,
            "remaining": self.remaining,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "apply_first": self.apply_first,
        }
