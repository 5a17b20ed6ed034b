"""The HTTP surface: ``POST /slack/events``, ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt.async_app import AsyncBoltRequest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot import __version__
from bot.runtime import Runtime
from storage.db import schema_is_current

# The largest request the bot's own surfaces make Slack send is a click on the App Home,
# whose payload carries the whole Home view: 493,034 bytes form-encoded when every tag and
# name in it is emoji (103,034 in plain ASCII); tests/unit/test_request_sizes.py measures it.
# A quarter more leaves room for what Slack adds to a view; anything bigger is not Slack.
MAX_BODY = 640_000
# Requests whose signature is not checked yet, reading or verifying their bodies at once; a
# request that finds no slot within SLOT_WAIT seconds is answered 503 without being read.
MAX_UNVERIFIED = 16
SLOT_WAIT = 1.0
# Slack stops waiting for an answer after 3 s: a body slower than that cannot be answered in
# time anyway, so it is not read further (408).
BODY_READ_TIMEOUT = 3.0
# Slack's SSL check of a slash command's URL is the one unsigned request it sends; an unsigned
# request announcing more than this is refused unread.
SSL_CHECK_MAX = 200
# Slack's rule: a timestamp more than five minutes from now is a replay.
TIMESTAMP_TOLERANCE = 300

SLACK_EVENTS = "/slack/events"

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_LENGTH = re.compile(r"[0-9]{1,12}")


class SlackEvents:
    """``POST /slack/events`` as a plain ASGI endpoint, and Slack's one way in.

    Before any byte of the body is parsed: the signature headers must have Slack's shape and
    the timestamp be within five minutes (else 401, body unread; only Slack's SSL check, a
    few bytes, is read unsigned, and answered 200); a body over ``MAX_BODY`` is
    refused unread (413); at most ``MAX_UNVERIFIED`` requests read and verify their bodies at
    once (else 503), each within ``BODY_READ_TIMEOUT`` (else 408); the HMAC over the raw bytes
    must match (else 401). Only then is the body decoded and parsed, by Bolt; a signed body
    that is not what Slack sends (not UTF-8, JSON nested too deep, not an object) gets 400.
    Rejected bodies are never logged. The whole answer (what Slack waits for, giving up after
    3 s) is timed into ``releasebot_slack_ack_seconds``.

    :class:`WebApp` sends these requests here before Starlette's middleware and routing,
    which cost more per request than the rest of the ack path (docs/benchmarks.md).
    """

    def __init__(self, rt: Runtime) -> None:
        self.bolt = rt.bolt
        self.ack_seconds = rt.metrics.ack_seconds
        self._timers: dict[int, Any] = {}  # the histogram's child per status code
        secret = rt.settings.slack_signing_secret
        self._secret = secret.get_secret_value().encode("utf-8") if secret else b""
        self._slots = asyncio.Semaphore(MAX_UNVERIFIED)

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
        timestamp = _signed_timestamp(headers, time.time())
        signature = _one(headers, "x-slack-signature")
        lengths = headers.get("content-length", [])
        if timestamp is None or signature is None or not _SIGNATURE.fullmatch(signature):
            # Unsigned: only Slack's SSL check (a few bytes, announced) is worth reading.
            if not (len(lengths) == 1 and _LENGTH.fullmatch(lengths[0])):
                return _json(401, {"error": "invalid request"})
            if int(lengths[0]) > SSL_CHECK_MAX:
                return _json(401, {"error": "invalid request"})
            timestamp = signature = None
        if len(lengths) > 1 or (lengths and not _LENGTH.fullmatch(lengths[0])):
            return _json(400, {"error": "malformed request"})
        if lengths and int(lengths[0]) > MAX_BODY:
            return _json(413, {"error": "request too large"})
        try:
            await asyncio.wait_for(self._slots.acquire(), SLOT_WAIT)
        except TimeoutError:
            return _json(503, {"error": "busy"}, retry_after=True)
        try:
            try:
                async with asyncio.timeout(BODY_READ_TIMEOUT):
                    raw = await _read_body(receive)
            except TimeoutError:
                return _json(408, {"error": "request body too slow"})
            if raw is None:
                return _json(413, {"error": "request too large"})
            if timestamp is None or signature is None:
                if _is_ssl_check(raw):
                    return 200, [(b"content-length", b"0")], b""
                return _json(401, {"error": "invalid request"})
            if not self._signed(timestamp, raw, signature):
                return _json(401, {"error": "invalid request"})
        finally:
            self._slots.release()
        try:
            request = AsyncBoltRequest(
                body=raw.decode("utf-8"),
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,  # type: ignore[arg-type]
            )
        except (ValueError, RecursionError, TypeError, AttributeError, KeyError, IndexError):
            # Bolt parses the body as it builds the request, and reads Slack's fields on the
            # way: a body that is not UTF-8, JSON that nests too deep, a payload that is not an
            # object or whose fields are not Slack's shapes. Signed, but not Slack's.
            return _json(400, {"error": "malformed payload"})
        if not isinstance(request.body, dict):
            return _json(400, {"error": "malformed payload"})
        response = await self.bolt.async_dispatch(request)
        body = response.body.encode("utf-8")
        out = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in response.first_headers_without_set_cookie().items()
            if name.lower() != "content-length"
        ]
        out.append((b"content-length", str(len(body)).encode("latin-1")))
        return response.status, out, body

    def _signed(self, timestamp: str, raw: bytes | bytearray, signature: str) -> bool:
        """Slack's v0 signature: HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the secret."""
        if not self._secret:
            return False
        mac = hmac.new(self._secret, b"v0:" + timestamp.encode("ascii") + b":", hashlib.sha256)
        mac.update(raw)
        return hmac.compare_digest("v0=" + mac.hexdigest(), signature)


Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _is_ssl_check(raw: bytes | bytearray) -> bool:
    """Slack's SSL check of a slash command's URL (``ssl_check=1&token=...``): unsigned, and
    answered 200 with nothing done, as Bolt does."""
    try:
        fields = parse_qs(raw.decode("ascii"), max_num_fields=4)
    except ValueError:
        return False
    return fields.get("ssl_check") == ["1"]


def _one(headers: dict[str, list[str]], name: str) -> str | None:
    """The header's value when it is given exactly once."""
    values = headers.get(name, [])
    return values[0] if len(values) == 1 else None


def _signed_timestamp(headers: dict[str, list[str]], now: float) -> str | None:
    """``x-slack-request-timestamp`` when it is digits within five minutes of ``now``."""
    value = _one(headers, "x-slack-request-timestamp")
    if value is None or not _TIMESTAMP.fullmatch(value):
        return None
    return value if abs(now - int(value)) <= TIMESTAMP_TOLERANCE else None


async def _read_body(receive: Receive) -> bytearray | None:
    """The request body, or None as soon as it grows over ``MAX_BODY``."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body", False):
            return body


def _json(status: int, content: dict[str, str], retry_after: bool = False) -> Answer:
    body = json.dumps(content).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("latin-1")),
    ]
    if retry_after:
        headers.append((b"retry-after", b"1"))
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
