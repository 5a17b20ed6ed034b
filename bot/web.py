"""The HTTP surface: ``POST /slack/events``, ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.metrics import AckLatencyMiddleware
from bot.runtime import Runtime
from storage.db import schema_is_current

MAX_BODY = 1_000_000  # Slack's payloads are far smaller; refuse anything bigger unread


def create_web_app(rt: Runtime, *, manage_runtime: bool = True) -> Starlette:
    handler = AsyncSlackRequestHandler(rt.bolt)
    secret = rt.settings.slack_signing_secret
    verifier = SignatureVerifier(secret.get_secret_value() if secret else "")

    async def slack_events(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return JSONResponse({"error": "request too large"}, status_code=413)
        try:
            return await handler.handle(request)
        except ValueError:
            # Bolt parses the body before it checks the signature; a body that is not what
            # Slack sends is refused here, as unsigned (401) or malformed (400).
            body = await request.body()
            if not verifier.is_valid_request(body, dict(request.headers)):
                return JSONResponse({"error": "invalid request"}, status_code=401)
            return JSONResponse({"error": "malformed payload"}, status_code=400)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            current = await schema_is_current(rt.db)
        except Exception:
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        if not current:
            return JSONResponse({"status": "migrations pending"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics(_: Request) -> Response:
        return Response(rt.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage_runtime:
            await rt.start()
        try:
            yield
        finally:
            if manage_runtime:
                await rt.close()

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        middleware=[Middleware(AckLatencyMiddleware, metrics=rt.metrics)],
        lifespan=lifespan,
    )
