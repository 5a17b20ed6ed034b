"""Cloudflare JSON → the engine's domain records.

Each function takes the ``result`` part of a success envelope (or one item of it) and raises
``ValueError`` with a short reason when a field the bot relies on is missing or mistyped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.engine.model import (
    Binding,
    Deployment,
    VersionMetrics,
    VersionRuntime,
    VersionShare,
    WorkerVersion,
)
from bot.engine.source import VersionBuild

TAG = "workers/tag"
TRIGGERED_BY = "workers/triggered_by"
MESSAGE = "workers/message"

# Cloudflare sends microseconds (and sometimes nanoseconds); fromisoformat takes at most six
# fractional digits, so longer fractions are cut rather than rejected.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as a timezone-aware datetime (UTC when no offset is given)."""
    if not isinstance(value, str) or not value:
        return None
    text = _LONG_FRACTION.sub(r"\1", value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a timestamp") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """UTC, whole seconds, ``Z`` suffix: the form GraphQL's ``Time`` scalar expects."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _obj(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} is not an object")
    return value


def _object(value: object) -> dict[str, Any]:
    """A JSON object, or an empty one where the field is missing or not an object."""
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def version(item: Any) -> WorkerVersion:
    """One item of the versions list, or a version detail."""
    data = _obj(item, "version")
    vid = _str(data.get("id"))
    if vid is None:
        raise ValueError("a version has no id")
    meta = _object(data.get("metadata"))
    # annotations are a sibling of metadata in the live API, not inside it
    notes = _object(data.get("annotations"))
    number = data.get("number")
    resources = _object(data.get("resources"))
    script = _object(resources.get("script"))
    return WorkerVersion(
        id=vid,
        number=int(number) if isinstance(number, int | float) else None,
        tag=_str(notes.get(TAG)),
        message=_str(notes.get(MESSAGE)),
        author_email=_str(meta.get("author_email")),
        created_on=parse_time(meta.get("created_on")),
        source=_str(meta.get("source")),
        etag=_str(script.get("etag")),
        triggered_by=_str(notes.get(TRIGGERED_BY)),
        runtime=runtime(resources) if "resources" in data else None,
    )


# the field of a binding that names its resource, by binding type (others: "id", if any)
_TARGET_FIELDS = (
    "namespace_id",
    "bucket_name",
    "queue_name",
    "class_name",
    "service",
    "database_id",
    "id",
    "index_name",
    "dataset",
    "workflow_name",
)


def runtime(resources: dict[str, Any]) -> VersionRuntime:
    """A version detail's ``resources``: bindings (secrets by name only) and
    ``script_runtime`` (compatibility date and flags, usage model, DO migration tag)."""
    bindings = []
    raw = resources.get("bindings")
    for item in raw if isinstance(raw, list) else []:
        entry = _object(item)
        name, kind = _str(entry.get("name")), _str(entry.get("type"))
        if name is None or kind is None:
            continue
        target = next((t for f in _TARGET_FIELDS if (t := _str(entry.get(f)))), None)
        bindings.append(Binding(name, kind, target))
    run = _object(resources.get("script_runtime"))
    flags = run.get("compatibility_flags")
    return VersionRuntime(
        bindings=tuple(sorted(bindings, key=lambda b: b.name)),
        compatibility_date=_str(run.get("compatibility_date")),
        compatibility_flags=tuple(
            sorted(f for f in flags if isinstance(f, str)) if isinstance(flags, list) else ()
        ),
        usage_model=_str(run.get("usage_model")),
        migration_tag=_str(run.get("migration_tag")),
    )


def deployment(item: Any) -> Deployment:
    """One deployment object (list item or create/get result)."""
    data = _obj(item, "deployment")
    did = _str(data.get("id"))
    if did is None:
        raise ValueError("a deployment has no id")
    raw_versions = data.get("versions")
    if not isinstance(raw_versions, list) or not raw_versions:
        raise ValueError(f"deployment {did} lists no versions")
    shares = []
    for entry in raw_versions:
        share = _obj(entry, "deployment version")
        vid = _str(share.get("version_id"))
        pct = share.get("percentage")
        if vid is None or not isinstance(pct, int | float):
            raise ValueError(f"deployment {did} has a version without id or percentage")
        shares.append(VersionShare(version_id=vid, percentage=float(pct)))
    notes = _object(data.get("annotations"))
    return Deployment(
        id=did,
        versions=tuple(shares),
        created_on=parse_time(data.get("created_on")),
        author_email=_str(data.get("author_email")),
        source=_str(data.get("source")),
        message=_str(notes.get(MESSAGE)),
    )


def deployments(result: Any) -> list[Deployment]:
    data = _obj(result, "result")
    items = data.get("deployments")
    if not isinstance(items, list):
        raise ValueError("result.deployments is not a list")
    return [deployment(item) for item in items]


def versions_page(result: Any) -> list[WorkerVersion]:
    data = _obj(result, "result")
    items = data.get("items")
    if not isinstance(items, list):
        raise ValueError("result.items is not a list")
    return [version(item) for item in items]


def metrics(data: Any) -> dict[str, VersionMetrics]:
    """``data`` of the per-version ``workersInvocationsAdaptive`` query, summed per version.

    Rows are summed because Cloudflare may split a version over several groups; for the
    quantiles the largest value is kept, which errs on the side of a slower-looking version.
    """
    accounts = _obj(_obj(data, "data").get("viewer"), "data.viewer").get("accounts")
    if not isinstance(accounts, list):
        raise ValueError("data.viewer.accounts is not a list")
    totals: dict[str, dict[str, Any]] = {}
    for account in accounts:
        rows = _obj(account, "account").get("workersInvocationsAdaptive") or []
        if not isinstance(rows, list):
            raise ValueError("workersInvocationsAdaptive is not a list")
        for row in rows:
            _add_row(totals, _obj(row, "row"))
    return {
        vid: VersionMetrics(
            version_id=vid,
            requests=t["requests"],
            errors=t["errors"],
            cpu_time_p50_us=t["p50"],
            cpu_time_p99_us=t["p99"],
        )
        for vid, t in totals.items()
    }


def _add_row(totals: dict[str, dict[str, Any]], row: dict[str, Any]) -> None:
    dims = _object(row.get("dimensions"))
    vid = _str(dims.get("scriptVersion"))
    if vid is None:
        # traffic that Cloudflare could not attribute to a version cannot judge one
        return
    sums = _object(row.get("sum"))
    quantiles = _object(row.get("quantiles"))
    entry = totals.setdefault(vid, {"requests": 0, "errors": 0, "p50": None, "p99": None})
    entry["requests"] += int(sums.get("requests") or 0)
    entry["errors"] += int(sums.get("errors") or 0)
    for key, field in (("p50", "cpuTimeP50"), ("p99", "cpuTimeP99")):
        value = quantiles.get(field)
        if isinstance(value, int | float):
            entry[key] = max(float(value), entry[key] or 0.0)


def split_body(split: Sequence[VersionShare]) -> list[dict[str, Any]]:
    """The ``versions`` array of a deployment request; whole percentages go as integers."""
    return [
        {
            "version_id": share.version_id,
            "percentage": int(share.percentage)
            if float(share.percentage).is_integer()
            else share.percentage,
        }
        for share in split
    ]


def builds(result: Any) -> dict[str, VersionBuild]:
    """``result`` of the Builds API's builds-by-version: ``{"builds": {version_id: build}}``."""
    data = _obj(result, "builds result")
    raw = data.get("builds") or {}
    if not isinstance(raw, dict):
        raise ValueError("result.builds is not an object")
    found: dict[str, VersionBuild] = {}
    for vid, item in raw.items():
        build = _obj(item, "build")
        meta = _object(build.get("build_trigger_metadata"))
        owner, name = _str(meta.get("provider_account_name")), _str(meta.get("repo_name"))
        pull = _object(build.get("pull_request"))
        found[str(vid)] = VersionBuild(
            version_id=str(vid),
            commit_sha=_str(meta.get("commit_hash")),
            branch=_str(meta.get("branch")),
            repository=f"{owner}/{name}" if owner and name else name,
            outcome=_str(build.get("build_outcome")),
            pull_request_url=_str(pull.get("pull_request_url")),
            author=_str(meta.get("author")),
            commit_message=_str(meta.get("commit_message")),
        )
    return found
