"""The HTTP endpoints of the browser console (mounted at ``/console``): the page, one viewer's
snapshot and its event stream, and the actions a person takes — each handed to the
:class:`~bot.dev.web_console.WebConsole` that owns the state."""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.dev.web_view import Person, cloudflare_panel, page

if TYPE_CHECKING:
    from bot.dev.web_console import WebConsole

STATIC = Path(__file__).parent / "static"
STREAM_SECONDS = 30.0  # an event stream ends after this; the page opens the next one


def _bad_request(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def console_app(console: WebConsole) -> Starlette:
    """The Starlette app of ``console``."""

    def viewer_of(request: Request, data: dict[str, Any] | None = None) -> Person | None:
        """Who the request acts as: ``user`` (an id) in the body or query, or ``?as=name``;
        the first person when neither is given."""
        wanted = (data or {}).get("user") or request.query_params.get("user")
        people = console.people()
        if wanted is None and request.query_params.get("as"):
            name = request.query_params["as"].lower()
            wanted = next((p.id for p in people if p.name == name), None)
        if wanted is None:
            return people[0] if people else None
        return console.person(str(wanted))

    def channel_of(request: Request, data: dict[str, Any] | None = None) -> str:
        query = request.query_params.get("channel")
        return str((data or {}).get("channel") or query or console.home)

    async def index(request: Request) -> Response:
        viewer = viewer_of(request)
        if viewer is None:
            return HTMLResponse("Nobody to act as: the Slack stand-in has no users.", 503)
        channel = channel_of(request)
        since = console.session_start()
        snap = console.snapshot(viewer, channel, since)
        first = "".join(
            f'<div class="row" id="{m["id"]}">{m["html"]}</div>' for m in snap["messages"]
        )
        base = request.scope.get("root_path", "").rstrip("/")
        people = console.people()
        text = page(
            base,
            people,
            viewer,
            channel,
            snap["channels"],
            console.command,
            first,
            since,
            console.sim.targets,
        )
        return HTMLResponse(text, headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        viewer = viewer_of(request)
        if viewer is None:
            return _bad_request("unknown user", 404)
        since = request.query_params.get("since")
        return JSONResponse(console.snapshot(viewer, channel_of(request), since))

    async def stream(request: Request) -> Response:
        """Server-sent events: the viewer's snapshot now and after every change. A stream
        lasts ``console.stream_seconds`` and ends with a ``rotate`` event, on which the page
        opens the next one at once (so it never looks disconnected)."""
        viewer = viewer_of(request)
        if viewer is None:
            return _bad_request("unknown user", 404)
        channel = channel_of(request)
        since = request.query_params.get("since")

        async def events() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            sent, seen = "", None
            ends = time.monotonic() + console.stream_seconds
            while not (console.closing or console.stop_when()) and time.monotonic() < ends:
                mark = console.fingerprint()
                if mark != seen:
                    seen = mark
                    data = json.dumps(console.snapshot(viewer, channel, since))
                    if data != sent:
                        sent = data
                        yield f"data: {data}\n\n"
                await console.slack.wait_changed(1.0)
                await asyncio.sleep(0.03)  # let a burst of edits land as one update
            if not (console.closing or console.stop_when()):
                yield "event: rotate\ndata: {}\n\n"  # planned: the page opens the next one

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def command(request: Request) -> Response:
        data = await _json_body(request)
        viewer = viewer_of(request, data) if data else None
        if data is None or viewer is None or not str(data.get("text", "")).startswith("/"):
            return _bad_request("send {user, channel, text} with text starting with /")
        result = await console.run_command(viewer, channel_of(request, data), data["text"])
        return JSONResponse(result)

    async def action(request: Request) -> Response:
        data = await _json_body(request)
        viewer = viewer_of(request, data) if data else None
        if data is None or viewer is None:
            return _bad_request("send {user, message, block, action}")
        result = await console.press(
            viewer,
            str(data.get("message", "")),
            str(data.get("block", "")),
            str(data.get("action", "")),
        )
        return JSONResponse(result, status_code=200 if result["status"] else 404)

    async def view(request: Request) -> Response:
        data = await _json_body(request)
        viewer = viewer_of(request, data) if data else None
        if data is None or viewer is None:
            return _bad_request("send {user, view_id, values} or {user, view_id, close: true}")
        values = data.get("values") or {}
        if not isinstance(values, dict):
            return _bad_request("values must be an object")
        result = await console.submit_view(
            viewer,
            str(data.get("view_id", "")),
            {str(k): str(v) for k, v in values.items()},
            bool(data.get("close")),
        )
        return JSONResponse(result)

    async def cloudflare(request: Request) -> Response:
        try:
            overview = await console.sim.overview()
        except httpx.HTTPError as exc:
            problem = html.escape(str(exc) or type(exc).__name__)
            return JSONResponse({"html": f"<p>Simulator unreachable: {problem}</p>"}, 502)
        return JSONResponse({"html": cloudflare_panel(overview), **overview})

    async def set_mode(request: Request) -> Response:
        data = await _json_body(request)
        if data is None or not data.get("script") or not data.get("version"):
            return _bad_request("send {script, version, mode: good|errors|bad}")
        mode = str(data.get("mode") or "bad")
        try:
            version = await console.sim.set_mode(str(data["script"]), str(data["version"]), mode)
        except ValueError as exc:
            return _bad_request(str(exc))
        except httpx.HTTPStatusError as exc:
            return _bad_request(exc.response.text, exc.response.status_code)
        return JSONResponse({"ok": True, "version": version})

    async def home(request: Request) -> Response:
        data = await _json_body(request)
        viewer = viewer_of(request, data) if data else None
        if viewer is None:
            return _bad_request("send {user}")
        return JSONResponse(await console.open_home(viewer))

    async def upload(request: Request) -> Response:
        data = await _json_body(request)
        viewer = viewer_of(request, data) if data else None
        if data is None or viewer is None or not data.get("script"):
            return _bad_request("send {user, script, tag, message, mode: good|errors|bad}")
        try:
            version = await console.sim.upload(
                str(data["script"]),
                str(data.get("tag") or "").strip(),
                str(data.get("message") or "").strip(),
                str(data.get("mode") or "good"),
                f"{viewer.name}@example.com",
            )
        except ValueError as exc:
            return _bad_request(str(exc))
        return JSONResponse({"ok": True, "version": version})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/state", state),
            Route("/api/stream", stream),
            Route("/api/command", command, methods=["POST"]),
            Route("/api/action", action, methods=["POST"]),
            Route("/api/view", view, methods=["POST"]),
            Route("/api/cloudflare", cloudflare),
            Route("/api/cloudflare/mode", set_mode, methods=["POST"]),
            Route("/api/cloudflare/upload", upload, methods=["POST"]),
            Route("/api/home", home, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
