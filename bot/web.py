"""The HTTP surface: ``POST /slack/events``, ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt.async_app import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot import __version__
from bot.runtime import Runtime
from storage.db import schema_is_current

MAX_BODY = 1_000_000  # Slack's payloads are far smaller; refuse anything bigger unread


SLACK_EVENTS = "/slack/events"


class SlackEvents:
    """``POST /slack/events`` as a plain ASGI endpoint: read the body (at most ``MAX_BODY``),
    hand it to Bolt, write Bolt's answer, and time the whole answer (what Slack waits for,
    giving up after 3 s) into ``releasebot_slack_ack_seconds``.

    :class:`WebApp` sends these requests here before Starlette's middleware and routing,
    which cost more per request than the rest of the ack path (docs/benchmarks.md).
    """

    def __init__(self, rt: Runtime) -> None:
        self.bolt = rt.bolt
        self.ack_seconds = rt.metrics.ack_seconds
        self._timers: dict[int, Any] = {}  # the histogram's child per status code
        secret = rt.settings.slack_signing_secret
        self.verifier = SignatureVerifier(secret.get_secret_value() if secret else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500
        try:
            status, headers, body = await self._answer(scope, receive)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except ClientDisconnect:
            status = 499  # the client left before its body arrived: nobody to answer
        finally:
            timer = self._timers.get(status)
            if timer is None:
                timer = self._timers[status] = self.ack_seconds.labels(str(status))
            timer.observe(time.perf_counter() - started)

    async def _answer(self, scope: Scope, receive: Receive) -> Answer:
        headers: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        raw = await _read_body(headers, receive)
        if raw is None:
            return _json(413, {"error": "request too large"})
        try:
            request = AsyncBoltRequest(
                body=raw.decode("utf-8"),
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,  # type: ignore[arg-type]
            )
            response = await self.bolt.async_dispatch(request)
        except ValueError:
            # Bolt parses the body before it checks the signature; a body that is not what
            # Slack sends is refused here, as unsigned (401) or malformed (400).
            flat = {name: values[0] for name, values in headers.items()}
            if not self.verifier.is_valid_request(raw, flat):
                return _json(401, {"error": "invalid request"})
            return _json(400, {"error": "malformed payload"})
        body = response.body.encode("utf-8")
        out = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in response.first_headers_without_set_cookie().items()
            if name.lower() != "content-length"
        ]
        out.append((b"content-length", str(len(body)).encode("latin-1")))
        return response.status, out, body


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


async def _read_body(headers: dict[str, list[str]], receive: Receive) -> bytes | None:
    """The request body, or None when it is (or announces itself as) over ``MAX_BODY``."""
    length = headers.get("content-length", [None])[0]
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json(status: int, content: dict[str, str]) -> Answer:
    body = json.dumps(content).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("latin-1")),
    ]
    return status, headers, body


class WebApp(Starlette):
    """Starlette, except that Slack's requests go straight to :class:`SlackEvents`."""

    def __init__(self, slack_events: SlackEvents, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slack_events = slack_events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == scope.get("root_path", "") + SLACK_EVENTS
        ):
            await self.slack_events(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def metrics_endpoint(rt: Runtime) -> Any:
    """``GET /metrics``: refreshes what is read from the database at scrape time (the outbox
    backlogs), then serves the registry."""

    async def metrics(_: Request) -> Response:
        await rt.metrics.refresh_backlog(rt.db, rt.clock.now())
        return Response(rt.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics


def create_metrics_app(rt: Runtime) -> Starlette:
    """``/metrics`` alone, for ``METRICS_PORT``."""
    return Starlette(routes=[Route("/metrics", metrics_endpoint(rt))])


def create_web_app(
    rt: Runtime, *, manage_runtime: bool = True, serve_metrics: bool = True
) -> WebApp:
    slack_events = SlackEvents(rt)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(_: Request) -> Response:
        try:
            current = await schema_is_current(rt.db)
        except Exception:
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        if not current:
            return JSONResponse({"status": "migrations pending"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage_runtime:
            await rt.start()
        try:
            yield
        finally:
            if manage_runtime:
                await rt.close()

    routes = [
        Route(SLACK_EVENTS, slack_events, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
    ]
    if serve_metrics:
        routes.append(Route("/metrics", metrics_endpoint(rt)))
    return WebApp(slack_events, routes=routes, lifespan=lifespan)
