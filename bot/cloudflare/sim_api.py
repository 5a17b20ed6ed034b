"""The simulated REST operations, one function per Cloudflare operation.

Each handler takes a ``Call`` and returns ``(status, body)``, or raises ``ApiError`` which the
server turns into Cloudflare's failure envelope. Paths are relative to ``/client/v4``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.cloudflare.parse import parse_time
from bot.cloudflare.sim_d1 import SQL_ERROR, QueryFailed
from bot.cloudflare.sim_model import ApiError, SimDatabase, SimScript, SimVersion, check_split
from bot.cloudflare.sim_state import D1_RESTORE_LIMIT, D1_RESTORE_WINDOW, SimulatorState

VALIDATION = 10021
NOT_FOUND = 10007
SECRETS_CHANGED = 10220
UNAUTHORIZED = 9109
# D1 answers with codes in its own 7xxx range; these two are the simulator's choice
D1_NOT_FOUND = 7404
D1_BAD_REQUEST = 7400
D1_TOO_MANY_RESTORES = 7429  # the simulator's own code: Cloudflare documents none


@dataclass(frozen=True, slots=True)
class Call:
    state: SimulatorState
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    headers: Mapping[str, str]


Handler = Callable[[Call], tuple[int, Any]]


def ok(result: Any, **extra: Any) -> tuple[int, dict[str, Any]]:
    return 200, {"success": True, "errors": [], "messages": [], "result": result, **extra}


def failure(code: int, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": None,
    }


def _account(call: Call) -> None:
    if call.params.get("account_id") != call.state.account_id:
        raise ApiError(403, UNAUTHORIZED, "Unauthorized to access requested resource")


def _script(call: Call) -> SimScript:
    _account(call)
    found = call.state.scripts.get(call.params["script_name"])
    if found is None:
        raise ApiError(404, NOT_FOUND, "This Worker does not exist on your account.")
    return found


def _flag(call: Call, name: str) -> bool:
    raw = call.query.get(name)
    if raw is None or raw == "":
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError(400, VALIDATION, f"Query parameter '{name}' must be true or false")


def _int(call: Call, name: str, default: int, highest: int) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, VALIDATION, f"Query parameter '{name}' must be an integer") from None
    if not 1 <= value <= highest:
        raise ApiError(400, VALIDATION, f"Query parameter '{name}' must be 1-{highest}")
    return value


# -- versions ----------------------------------------------------------------------------


def list_versions(call: Call) -> tuple[int, Any]:
    script = _script(call)
    if _flag(call, "deployable"):
        items = call.state.deployable(script)
        info = {"page": 1, "per_page": len(items), "count": len(items)}
        return ok(
            {"items": [v.to_api() for v in items]}, result_info=info | {"total_count": len(items)}
        )
    page = _int(call, "page", 1, 10_000)
    per_page = _int(call, "per_page", 10, 100)
    newest_first = list(reversed(script.versions))
    chunk = newest_first[(page - 1) * per_page : page * per_page]
    info = {
        "page": page,
        "per_page": per_page,
        "count": len(chunk),
        "total_count": len(newest_first),
    }
    return ok({"items": [v.to_api() for v in chunk]}, result_info=info)


def get_version(call: Call) -> tuple[int, Any]:
    script = _script(call)
    found = script.find(call.params["version_id"])
    if found is None:
        raise ApiError(404, NOT_FOUND, "Version not found.")
    return ok(found.to_api_full())


# -- deployments -------------------------------------------------------------------------


def list_deployments(call: Call) -> tuple[int, Any]:
    script = _script(call)
    return ok({"deployments": [d.to_api() for d in script.deployments]})


def get_deployment(call: Call) -> tuple[int, Any]:
    script = _script(call)
    for deployment in script.deployments:
        if deployment.id == call.params["deployment_id"]:
            return ok(deployment.to_api())
    raise ApiError(404, NOT_FOUND, "Deployment not found.")


def create_deployment(call: Call) -> tuple[int, Any]:
    state = call.state
    try:
        body: Any = json.loads(call.body)
        parsed = True
    except (ValueError, UnicodeDecodeError):
        body, parsed = call.body.decode(errors="replace"), False
    # recorded before any check, so tests see every POST that reached the API
    state.deployment_posts.append(
        {
            "script": call.params["script_name"],
            "force": (call.query.get("force") or "").lower() in ("true", "1"),
            "body": body,
        }
    )
    script = _script(call)
    force = _flag(call, "force")
    if not parsed:
        raise ApiError(400, VALIDATION, "Could not parse the request body as JSON.")
    pairs, message = _deployment_request(body)
    problem = check_split(pairs)
    if problem:
        raise ApiError(400, VALIDATION, problem[0].upper() + problem[1:] + ".")
    deployable = {v.id for v in state.deployable(script)}
    for vid, _ in pairs:
        version = script.find(vid)
        if version is None:
            raise ApiError(404, NOT_FOUND, f"Version {vid} not found for this Worker.")
        if vid not in deployable:
            raise ApiError(
                400,
                VALIDATION,
                f"Version {vid} is older than the last 100 versions and cannot be deployed.",
            )
        if not force and version.number <= script.secrets_changed_at:
            names = ", ".join(script.changed_secrets) or "secrets"
            raise ApiError(
                400,
                SECRETS_CHANGED,
                f"Secrets have changed since version {vid} was uploaded ({names}); "
                "deploy with force to use it anyway.",
            )
        _refuse_rollback(state, script, version)
    deployment = state.record_deployment(script, pairs, state.token_owner_email, "api", message)
    return ok(deployment.to_api())


def _refuse_rollback(state: SimulatorState, script: SimScript, version: SimVersion) -> None:
    """Cloudflare's rollback limits (docs: versions-and-deployments/rollbacks), which
    ``force`` does not lift: a Durable Object migration between the version serving now and
    an older target, and a binding to a KV namespace, R2 bucket or queue that no longer
    exists. The API's codes for these are not documented; the simulator answers 10021 with
    the reason in the message."""
    active = script.active
    if active is not None and version.id not in {vid for vid, _ in active.versions}:
        live = [v for vid, _ in active.versions if (v := script.find(vid)) is not None]
        newest = max(live, key=lambda v: v.number, default=None)
        if (
            newest is not None
            and version.number < newest.number
            and version.migration_tag != newest.migration_tag
        ):
            raise ApiError(
                400,
                VALIDATION,
                f"A Durable Object migration has occurred since version {version.id}; "
                "it cannot be rolled back to.",
            )
    for binding in version.bindings:
        if binding["id"] in state.deleted_resources:
            raise ApiError(
                400,
                VALIDATION,
                f"Version {version.id} has a binding {binding['name']} to a "
                f"{binding['type']} that no longer exists.",
            )


def _deployment_request(body: Any) -> tuple[list[tuple[str, float]], str | None]:
    if not isinstance(body, dict):
        raise ApiError(400, VALIDATION, "The request body must be a JSON object.")
    if body.get("strategy") != "percentage":
        raise ApiError(400, VALIDATION, "Field 'strategy' must be 'percentage'.")
    versions = body.get("versions")
    if not isinstance(versions, list):
        raise ApiError(400, VALIDATION, "Field 'versions' must be a list.")
    pairs = []
    for entry in versions:
        if not isinstance(entry, dict):
            raise ApiError(400, VALIDATION, "Each entry of 'versions' must be an object.")
        vid, pct = entry.get("version_id"), entry.get("percentage")
        if not isinstance(vid, str) or not vid:
            raise ApiError(400, VALIDATION, "Each version needs a 'version_id'.")
        if isinstance(pct, bool) or not isinstance(pct, int | float):
            raise ApiError(400, VALIDATION, f"Version {vid} needs a numeric 'percentage'.")
        pairs.append((vid, float(pct)))
    annotations = body.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ApiError(400, VALIDATION, "Field 'annotations' must be an object.")
    message = annotations.get("workers/message")
    if message is not None and (not isinstance(message, str) or len(message) > 50):
        raise ApiError(400, VALIDATION, "Annotation 'workers/message' is at most 50 characters.")
    return pairs, message


# -- D1 ----------------------------------------------------------------------------------


def _database(call: Call) -> SimDatabase:
    _account(call)
    found = call.state.databases.get(call.params["database_id"])
    if found is None:
        raise ApiError(404, D1_NOT_FOUND, "The database could not be found.")
    return found


def get_database(call: Call) -> tuple[int, Any]:
    return ok(_database(call).to_api())


def _timestamp(call: Call) -> Any:
    raw = call.query.get("timestamp")
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise ApiError(400, D1_BAD_REQUEST, "Parameter 'timestamp' is not ISO 8601.") from None


def get_bookmark(call: Call) -> tuple[int, Any]:
    db = _database(call)
    at = _timestamp(call)
    bookmark = db.current if at is None else db.bookmark_at(at)
    if bookmark is None:
        raise ApiError(400, D1_BAD_REQUEST, "No bookmark exists at or before that timestamp.")
    return ok({"bookmark": bookmark})


def restore(call: Call) -> tuple[int, Any]:
    state = call.state
    db = _database(call)
    wanted, at = call.query.get("bookmark"), _timestamp(call)
    if (wanted is None) == (at is None):
        raise ApiError(400, D1_BAD_REQUEST, "Give exactly one of 'bookmark' or 'timestamp'.")
    if at is not None:
        wanted = db.bookmark_at(at)
        if wanted is None:
            raise ApiError(400, D1_BAD_REQUEST, "No bookmark exists at or before that timestamp.")
    if wanted not in {b for _, b in db.history}:
        raise ApiError(400, D1_BAD_REQUEST, "The bookmark is not valid for this database.")
    wait = state.d1_restore_wait(db.id)
    if wait is not None:
        # the limit is documented, its answer is not: a 429 in the API's error envelope
        raise ApiError(
            429,
            D1_TOO_MANY_RESTORES,
            f"Too many restores: a database may be restored at most {D1_RESTORE_LIMIT} times "
            f"per {D1_RESTORE_WINDOW.seconds // 60} minutes; try again in "
            f"{max(1, round(wait.total_seconds()))} s.",
        )
    previous = db.current
    restored = state.d1_restore(db.id, wanted)
    return ok(
        {
            "bookmark": restored,
            "previous_bookmark": previous,
            "message": f"Database restored to bookmark {wanted}",
        }
    )


def query(call: Call) -> tuple[int, Any]:
    db = _database(call)
    try:
        body = json.loads(call.body or b"{}")
    except ValueError:
        raise ApiError(400, D1_BAD_REQUEST, "The request body is not JSON.") from None
    sql = body.get("sql") if isinstance(body, dict) else None
    if not isinstance(sql, str):
        raise ApiError(400, D1_BAD_REQUEST, "Field 'sql' is required.")
    params = body.get("params")
    if params is not None and (
        not isinstance(params, list) or not all(isinstance(p, str) for p in params)
    ):
        raise ApiError(400, D1_BAD_REQUEST, "Field 'params' must be a list of strings.")
    try:
        return ok(call.state.d1_query(db.id, sql, params))
    except QueryFailed as exc:
        raise ApiError(400, SQL_ERROR, str(exc)) from None


# -- tokens ------------------------------------------------------------------------------


def verify_token(call: Call) -> tuple[int, Any]:
    return ok({"id": "ed17574386854bf78a67040be0a770b0", "status": call.state.token_status})


def verify_account_token(call: Call) -> tuple[int, Any]:
    _account(call)
    return verify_token(call)


# -- routing -----------------------------------------------------------------------------

_SCRIPT = "/accounts/{account_id}/workers/scripts/{script_name}"
_D1 = "/accounts/{account_id}/d1/database/{database_id}"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    handler: Handler
    regex: re.Pattern[str]


def _route(method: str, template: str, handler: Handler) -> Route:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    return Route(method, template, handler, re.compile(f"^{pattern}$"))


# -- Workers Builds ----------------------------------------------------------------------

MAX_BUILD_IDS = 20  # "Comma-separated list of version UUIDs (max 20)"


def builds_by_version(call: Call) -> tuple[int, Any]:
    _account(call)
    ids = [v for v in (call.query.get("version_ids") or "").split(",") if v]
    if not ids:
        raise ApiError(400, VALIDATION, "version_ids is required")
    if len(ids) > MAX_BUILD_IDS:
        raise ApiError(400, VALIDATION, f"at most {MAX_BUILD_IDS} version ids may be asked for")
    found = {v: call.state.builds[v].to_api() for v in ids if v in call.state.builds}
    return ok({"builds": found})


def routes(graphql: Handler) -> list[Route]:
    return [
        _route("GET", _SCRIPT + "/versions", list_versions),
        _route("GET", _SCRIPT + "/versions/{version_id}", get_version),
        _route("GET", _SCRIPT + "/deployments", list_deployments),
        _route("POST", _SCRIPT + "/deployments", create_deployment),
        _route("GET", _SCRIPT + "/deployments/{deployment_id}", get_deployment),
        _route("GET", _D1, get_database),
        _route("POST", _D1 + "/query", query),
        _route("GET", _D1 + "/time_travel/bookmark", get_bookmark),
        _route("POST", _D1 + "/time_travel/restore", restore),
        _route("GET", "/user/tokens/verify", verify_token),
        _route("GET", "/accounts/{account_id}/tokens/verify", verify_account_token),
        _route("GET", "/accounts/{account_id}/builds/builds", builds_by_version),
        _route("POST", "/graphql", graphql),
    ]


def match(table: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in table:
        if route.method == method:
            found = route.regex.match(path)
            if found:
                return route, found.groupdict()
    return None
