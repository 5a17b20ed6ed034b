"""The simulated GraphQL Analytics endpoint, for ``workersInvocationsAdaptive`` per version.

Not a GraphQL engine: it finds the dataset and the filters (``accountTag``, ``scriptName``,
``datetime_geq``, ``datetime_leq``, optionally ``scriptVersion``) in the query text, resolves
``$variables`` from ``variables`` (literal strings work too), and always answers the fields
the per-version health query asks for.

Numbers are deterministic: each deployment serves the script's ``traffic_rps`` for as long
as it was active inside the window, split by its percentages; a version's errors are its
requests times its error rate, rounded.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from bot.cloudflare.parse import parse_time
from bot.cloudflare.sim_api import Call
from bot.cloudflare.sim_model import SimScript

DATASET = "workersInvocationsAdaptive"
MAX_WINDOW = timedelta(days=31)  # "up to one month per query"
_VALUE = r'(\$\w+|"(?:[^"\\]|\\.)*")'


class QueryError(Exception):
    pass


def _filter(query: str, name: str, variables: dict[str, Any], required: bool) -> Any:
    found = re.search(rf"\b{name}\s*:\s*{_VALUE}", query)
    if found is None:
        if required:
            raise QueryError(f"filter {name} is required")
        return None
    token = found.group(1)
    if token.startswith("$"):
        if token[1:] not in variables:
            raise QueryError(f"variable {token} is used but not given")
        return variables[token[1:]]
    return json.loads(token)


def _time(value: Any, name: str) -> datetime:
    try:
        parsed = parse_time(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise QueryError(f"{name} must be an ISO 8601 time")
    return parsed


def version_traffic(script: SimScript, since: datetime, until: datetime) -> dict[str, float]:
    """Requests per version id in [since, until], from the deployment history."""
    oldest_first = list(reversed(script.deployments))
    traffic: dict[str, float] = defaultdict(float)
    for i, deployment in enumerate(oldest_first):
        start = max(deployment.created_on, since)
        end = until
        if i + 1 < len(oldest_first):
            end = min(end, oldest_first[i + 1].created_on)
        seconds = (end - start).total_seconds()
        if seconds <= 0:
            continue
        for vid, pct in deployment.versions:
            traffic[vid] += script.traffic_rps * seconds * pct / 100
    return dict(traffic)


def _rows(script: SimScript, since: datetime, until: datetime, only: str | None) -> list[Any]:
    rows = []
    for vid, amount in version_traffic(script, since, until).items():
        requests = round(amount)
        version = script.find(vid)
        if requests <= 0 or version is None or (only is not None and vid != only):
            continue
        rows.append(
            {
                "sum": {"requests": requests, "errors": round(requests * version.error_rate)},
                "quantiles": {"cpuTimeP50": version.cpu_p50_us, "cpuTimeP99": version.cpu_p99_us},
                "dimensions": {"scriptVersion": vid},
            }
        )
    return rows


def _answer(call: Call) -> dict[str, Any]:
    try:
        body = json.loads(call.body)
    except (ValueError, UnicodeDecodeError):
        raise QueryError("the request body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise QueryError("the request body needs a 'query' string")
    query: str = body["query"]
    variables = body.get("variables") or {}
    if not isinstance(variables, dict):
        raise QueryError("'variables' must be an object")
    if DATASET not in query:
        raise QueryError(f"the simulator answers {DATASET} queries only")
    account = _filter(query, "accountTag", variables, required=True)
    if account != call.state.account_id:
        raise QueryError("not authorized for that account")
    script_name = _filter(query, "scriptName", variables, required=True)
    since = _time(_filter(query, "datetime_geq", variables, required=True), "datetime_geq")
    until = _time(_filter(query, "datetime_leq", variables, required=True), "datetime_leq")
    only = _filter(query, "scriptVersion", variables, required=False)
    if until < since:
        raise QueryError("datetime_leq is before datetime_geq")
    if until - since > MAX_WINDOW:
        raise QueryError("the time range is longer than 31 days")
    script = call.state.scripts.get(str(script_name))
    # an unknown script simply has no invocations
    rows = _rows(script, since, until, only) if script else []
    return {"viewer": {"accounts": [{DATASET: rows}]}}


def graphql(call: Call) -> tuple[int, Any]:
    """Errors come back as HTTP 200 with ``data: null`` and an ``errors`` list, like
    Cloudflare's GraphQL API."""
    try:
        return 200, {"data": _answer(call), "errors": None}
    except QueryError as exc:
        # the documented error object: message, path from the root, extensions.timestamp
        error = {
            "message": str(exc),
            "path": ["viewer", "accounts", "0", DATASET],
            "extensions": {"timestamp": call.state.clock().isoformat().replace("+00:00", "Z")},
        }
        return 200, {"data": None, "errors": [error]}
