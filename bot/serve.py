"""Serving the bot: HTTP under uvicorn, or Socket Mode (with the health endpoints on PORT)."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from slack_sdk.errors import SlackApiError

from bot.config import Config
from bot.runtime import Runtime
from bot.settings import Settings
from bot.web import create_web_app

log = logging.getLogger("releasebot")


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


async def serve(settings: Settings, config: Config, host: str = "0.0.0.0") -> None:
    rt = Runtime(settings, config)
    try:
        await start_runtime(rt)
        web = create_web_app(rt, manage_runtime=False)
        server = uvicorn.Server(
            uvicorn.Config(web, host=host, port=settings.port, log_config=None, access_log=False)
        )
        if settings.socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert settings.slack_app_token is not None
            handler = AsyncSocketModeHandler(rt.bolt, settings.slack_app_token.get_secret_value())
            log.info("serving Slack over Socket Mode; health endpoints on port %s", settings.port)
            await asyncio.gather(handler.start_async(), server.serve())
        else:
            log.info("serving Slack over HTTP on port %s", settings.port)
            await server.serve()
    finally:
        await rt.close()
