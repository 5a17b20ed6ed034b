"""Serving the bot: HTTP under uvicorn, or Socket Mode (with the health endpoints on PORT).

A SIGTERM (``docker stop``) stops serving, lets work in progress finish (``Runtime.close``)
and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
import socket
from typing import Any

import uvicorn
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from starlette.responses import JSONResponse

from bot.config import Config
from bot.runtime import Runtime
from bot.settings import Settings
from bot.web import create_metrics_app, create_web_app

log = logging.getLogger("releasebot")

# How long the first Socket Mode connection may take before the start is given up.
SOCKET_CONNECT_TIMEOUT = 30.0


class StartupError(Exception):
    """The bot cannot start; the message is one line for the operator."""


async def start_runtime(rt: Runtime) -> None:
    try:
        await rt.start()
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        raise StartupError(f"Slack refused SLACK_BOT_TOKEN on auth.test ({error})") from None
    except OSError as exc:
        raise StartupError(
            f"cannot reach Slack at {rt.settings.slack_api_url} ({exc.strerror or exc})"
        ) from None


def _without_slack_events(app: Any) -> Any:
    """In Socket Mode Slack's requests come over the websocket, where Slack itself is the
    peer and nothing is signed; ``POST /slack/events`` on PORT must not pose as a way in."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/") == "/slack/events":
            refusal = JSONResponse(
                {"error": "this bot takes Slack's requests over Socket Mode"}, status_code=404
            )
            await refusal(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


async def _open_socket_mode(rt: Runtime, app_token: str) -> Any:
    """Connect to Slack's Socket Mode. The app token is checked here, once: the handler's own
    loop would retry a refused token for ever, quietly serving nothing."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    try:
        opened = await rt.slack_client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown error")
        raise StartupError(
            f"Slack refused SLACK_APP_TOKEN on apps.connections.open ({error})"
        ) from None
    except OSError as exc:
        raise StartupError(
            f"cannot reach Slack at {rt.settings.slack_api_url} ({exc.strerror or exc})"
        ) from None
    handler = AsyncSocketModeHandler(
        rt.bolt, app_token, logger=logging.getLogger("releasebot.socket")
    )
    handler.client.wss_uri = str(opened["url"])  # the first connection uses this address
    try:
        await asyncio.wait_for(handler.connect_async(), SOCKET_CONNECT_TIMEOUT)
    except TimeoutError:
        await handler.close_async()
        raise StartupError(
            f"cannot open the Socket Mode websocket in {SOCKET_CONNECT_TIMEOUT:.0f} s"
        ) from None
    except BaseException:
        await handler.close_async()
        raise
    return handler


def listen(host: str, port: int, what: str) -> socket.socket:
    """A listening socket on ``port``, taken before anything starts, so a port in use stops
    the start with one line rather than after the runtime is up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle off (TCP_NODELAY) only on accepted
    # sockets whose proto says TCP, and with Nagle on, uvicorn's two writes per response
    # (head, then body) waited ~40 ms for the client's delayed ACK on every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {what} {port} ({exc.strerror or exc}); "
            "is another process serving it?"
        ) from None
    sock.setblocking(False)
    return sock


def _on_sigterm(stop: asyncio.Event) -> None:
    """SIGTERM sets ``stop``. (uvicorn takes the signal while it serves and raises it again
    when done; without a handler here that second one would kill the process before the
    runtime is closed.) Only possible in the main thread; elsewhere (tests) nothing to do."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)


async def serve(settings: Settings, config: Config) -> None:
    if settings.socket_mode and not settings.slack_signing_secret:
        # Slack signs nothing in Socket Mode; the HTTP side (health endpoints only) gets a
        # secret nobody knows, so no request there can pass for Slack's either.
        unknown = SecretStr(secrets.token_urlsafe(32))
        settings = settings.model_copy(update={"slack_signing_secret": unknown})
    sockets = [listen(settings.host, settings.port, "PORT")]
    try:
        if settings.metrics_port is not None:
            sockets.append(listen(settings.host, settings.metrics_port, "METRICS_PORT"))
        await _serve(settings, config, sockets)
    finally:
        for sock in sockets:
            sock.close()


async def _serve(settings: Settings, config: Config, sockets: list[socket.socket]) -> None:
    stop = asyncio.Event()
    _on_sigterm(stop)
    rt = Runtime(settings, config)
    handler = None
    try:
        await start_runtime(rt)
        # What start-up built (modules, config, clients: ~145,000 objects) lives as long as
        # the process; frozen, the collector's full passes skip it: they took 86-89 ms,
        # stalling every ack in flight, and take 2-7 ms (docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        apart = settings.metrics_port is not None
        web: Any = create_web_app(rt, manage_runtime=False, serve_metrics=not apart)
        if settings.socket_mode:
            assert settings.slack_app_token is not None
            handler = await _open_socket_mode(rt, settings.slack_app_token.get_secret_value())
            web = _without_slack_events(web)
        server = uvicorn.Server(uvicorn.Config(web, log_config=None, access_log=False))
        servers = [(server, sockets[0])]
        if apart:
            metrics_server = uvicorn.Server(
                uvicorn.Config(create_metrics_app(rt), log_config=None, access_log=False)
            )
            # Signals are the main server's to take; it stops this one in turn.
            metrics_server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
            servers.append((metrics_server, sockets[1]))
        if stop.is_set():
            return
        if handler is not None:
            log.info("serving Slack over Socket Mode; health endpoints on port %s", settings.port)
        else:
            log.info("serving Slack over HTTP on %s port %s", settings.host, settings.port)
        if apart:
            log.info("serving /metrics on port %s", settings.metrics_port)
        await _serve_all(servers, stop)
        log.info("stopping: letting work in progress finish")
    finally:
        if handler is not None:
            await handler.close_async()
        await rt.close()


async def _serve_all(
    servers: list[tuple[uvicorn.Server, socket.socket]], stop: asyncio.Event
) -> None:
    """Serve each server on its socket until ``stop`` is set or one of them stops; then stop
    them all."""
    tasks = [asyncio.ensure_future(server.serve(sockets=[sock])) for server, sock in servers]
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        for server, _ in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
