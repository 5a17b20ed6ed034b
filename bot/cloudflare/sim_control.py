"""The simulator's own endpoints: ``/__sim/...`` to inspect and steer the state (JSON, for
tests and the browser console), and ``/__workers/{script}/...`` as the Workers themselves,
for health probes."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.cloudflare.sim_model import Fault, SimError
from bot.cloudflare.sim_state import SimulatorState

OVERRIDE_HEADER = "cloudflare-workers-version-overrides"
VERSION_HEADER = "X-Worker-Version"  # what the simulated Workers answer with
_OVERRIDE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*"([^"]+)"')

Endpoint = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise SimError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise SimError("the body must be a JSON object")
    return data


def _guarded(state: SimulatorState, fn: Callable[[Request], Awaitable[Any]]) -> Endpoint:
    """Runs ``fn`` and answers JSON; a ``SimError`` becomes 404 (an unknown script, version
    or database) or 400, and malformed input 400."""

    async def endpoint(request: Request) -> Response:
        try:
            result = await fn(request)
        except SimError as exc:
            text = str(exc)
            return _error(404 if text.startswith("no ") else 400, text)
        except (KeyError, TypeError, ValueError) as exc:
            return _error(400, f"bad request: {exc}")
        return result if isinstance(result, Response) else JSONResponse(result)

    return endpoint


def control_routes(state: SimulatorState) -> list[Route]:
    """``/__sim`` endpoints mirroring the ``SimulatorState`` methods."""

    def script_of(request: Request) -> str:
        name = request.path_params["script"]
        state.script(name)
        return name

    async def overview(request: Request) -> Any:
        with state.lock:
            return {
                "account_id": state.account_id,
                "scripts": [s.summary() for s in state.scripts.values()],
                "databases": [
                    d.to_api() | {"bookmark": d.current} for d in state.databases.values()
                ],
                "faults": [f.to_console() for f in state.faults],
                "token_status": state.token_status,
            }

    async def add_script(request: Request) -> Any:
        return {"name": state.add_script(str((await _json(request))["name"]))}

    async def versions(request: Request) -> Any:
        with state.lock:
            found = state.script(script_of(request))
            return {"versions": [v.to_console() for v in reversed(found.versions)]}

    async def upload(request: Request) -> Any:
        data = await _json(request)
        vid = state.upload_version(
            script_of(request),
            tag=data.get("tag"),
            message=data.get("message"),
            author_email=data.get("author_email", "dev@example.com"),
            source=data.get("source", "wrangler"),
            content=data.get("content"),
            migration_tag=data.get("migration_tag"),
            bindings=data.get("bindings") or (),
        )
        return {"id": vid}

    async def change_version(request: Request) -> Any:
        data = await _json(request)
        script, vid = script_of(request), request.path_params["version_id"]
        with state.lock:
            if "error_rate" in data:
                state.set_error_rate(script, vid, float(data["error_rate"]))
            if "healthy" in data:
                state.set_healthy(script, vid, bool(data["healthy"]))
            if "reports_version" in data:
                state.set_reports_version(script, vid, bool(data["reports_version"]))
            return state.version(script, vid).to_console()

    async def deployments(request: Request) -> Any:
        with state.lock:
            found = state.script(script_of(request))
            return {"deployments": [d.to_api() for d in found.deployments]}

    async def deploy(request: Request) -> Any:
        data = await _json(request)
        did = state.deploy_direct(
            script_of(request),
            data["versions"],
            author_email=data.get("author_email", "someone@example.com"),
            source=data.get("source", "wrangler"),
            message=data.get("message"),
        )
        return {"id": did}

    async def traffic(request: Request) -> Any:
        data = await _json(request)
        state.set_traffic(script_of(request), float(data["requests_per_second"]))
        return state.script(script_of(request)).summary()

    async def secret_changed(request: Request) -> Any:
        data = await _json(request)
        names = data.get("names") or ["API_KEY"]
        return {"version_id": state.mark_secret_changed(script_of(request), names=names)}

    async def faults(request: Request) -> Any:
        if request.method == "DELETE":
            state.clear_faults()
        elif request.method == "POST":
            data = await _json(request)
            state.inject(
                str(data.get("method", "*")),
                str(data["path_regex"]),
                data.get("status"),
                count=int(data.get("count", 1)),
                retry_after=data.get("retry_after"),
                delay=float(data.get("delay", 0.0)),
                apply_first=bool(data.get("apply_first", False)),
                code=data.get("code"),
                message=data.get("message"),
            )
        with state.lock:
            return {"faults": [f.to_console() for f in state.faults]}

    async def delete_resource(request: Request) -> Any:
        state.delete_resource(request.path_params["resource_id"])
        with state.lock:
            return {"deleted_resources": sorted(state.deleted_resources)}

    async def d1_write(request: Request) -> Any:
        return {"bookmark": state.d1_write(request.path_params["database_id"])}

    async def requests(request: Request) -> Any:
        with state.lock:
            return {"requests": list(state.requests_log)}

    async def posts(request: Request) -> Any:
        with state.lock:
            return {"deployment_posts": list(state.deployment_posts)}

    async def violations(request: Request) -> Any:
        with state.lock:
            return {"contract_violations": list(state.contract_violations)}

    async def reset(request: Request) -> Any:
        data = await _json(request)
        with state.lock:
            state.reset()
            if data.get("seed", True):
                state.seed_example(state.account_id)
        return await overview(request)

    table: list[tuple[str, Callable[[Request], Awaitable[Any]], list[str]]] = [
        ("/__sim/state", overview, ["GET"]),
        ("/__sim/scripts", add_script, ["POST"]),
        ("/__sim/scripts/{script}/versions", versions, ["GET"]),
        ("/__sim/scripts/{script}/versions", upload, ["POST"]),
        ("/__sim/scripts/{script}/versions/{version_id}", change_version, ["POST"]),
        ("/__sim/scripts/{script}/deployments", deployments, ["GET"]),
        ("/__sim/scripts/{script}/deployments", deploy, ["POST"]),
        ("/__sim/scripts/{script}/traffic", traffic, ["POST"]),
        ("/__sim/scripts/{script}/secret_changed", secret_changed, ["POST"]),
        ("/__sim/faults", faults, ["GET", "POST", "DELETE"]),
        ("/__sim/d1/{database_id}/write", d1_write, ["POST"]),
        ("/__sim/resources/{resource_id}", delete_resource, ["DELETE"]),
        ("/__sim/requests", requests, ["GET"]),
        ("/__sim/deployment_posts", posts, ["GET"]),
        ("/__sim/contract_violations", violations, ["GET"]),
        ("/__sim/reset", reset, ["POST"]),
    ]
    return [Route(path, _guarded(state, fn), methods=methods) for path, fn, methods in table]


def fault_response(fault: Fault) -> JSONResponse:
    """The injected answer: the fault's status, failure envelope and ``Retry-After``."""
    headers = {}
    if fault.retry_after is not None:
        # HTTP wants whole seconds; rounding up never asks for less than the fault said
        headers["Retry-After"] = str(math.ceil(fault.retry_after))
    return JSONResponse(fault.body(), status_code=fault.status or 500, headers=headers)


def pick_version(state: SimulatorState, script: str, override: str | None) -> str | None:
    """The version a request to ``script`` runs on, as Cloudflare routes it: the override
    header's choice when it names this script and a version that is part of the active
    deployment (a 0% share counts); otherwise, silently, the active split, spread by a
    request counter (request n goes to the version whose cumulative share first exceeds
    n mod 100). An override of any other version is ignored without a word, as Cloudflare
    ignores it (docs: versions-and-deployments/version-overrides)."""
    with state.lock:
        target = state.script(script)
        active = target.active
        if active is None:
            return None
        if override:
            in_deployment = {vid for vid, _ in active.versions}
            if state.clock() - active.created_on < state.override_lag:
                # not everywhere yet: only what the deployment before it held is known
                earlier = target.deployments[1] if len(target.deployments) > 1 else None
                in_deployment = {vid for vid, _ in earlier.versions} if earlier else set()
            for name, vid in _OVERRIDE.findall(override):
                if name == script and vid in in_deployment:
                    return vid
        slot = target.probes % 100
        target.probes += 1
        cumulative = 0.0
        for vid, pct in active.versions:
            cumulative += pct
            if slot < cumulative:
                return vid
        return active.versions[-1][0]


def worker_route(state: SimulatorState) -> Route:
    """``GET /__workers/{script}/{path}``: 200 ``{"ok": true, "version": id}`` from a healthy
    version, 500 from an unhealthy one, 404 for an unknown or undeployed script. The version
    is also in the ``X-Worker-Version`` header; both are left out for a version that does
    not report itself."""

    async def worker(request: Request) -> Response:
        script = request.path_params["script"]
        fault = state.take_fault(request.method, request.url.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return fault_response(fault)
        try:
            vid = pick_version(state, script, request.headers.get(OVERRIDE_HEADER))
        except SimError:
            return JSONResponse({"ok": False, "error": f"no Worker named {script}"}, 404)
        if vid is None:
            return JSONResponse({"ok": False, "error": f"{script} has no deployment"}, 404)
        with state.lock:
            version = state.version(script, vid)
            healthy, reports = version.healthy, version.reports_version
        # a Worker that reports its version (its version-metadata binding's id) says so in
        # the body and in a header; one that does not leaves both out
        body: dict[str, Any] = {"ok": healthy, "script": script}
        headers = {}
        if reports:
            body["version"] = vid
            headers[VERSION_HEADER] = vid
        if not healthy:
            body["error"] = "simulated failure"
        return JSONResponse(body, status_code=200 if healthy else 500, headers=headers)

    return Route("/__workers/{script}/{path:path}", worker, methods=["GET", "HEAD"])
