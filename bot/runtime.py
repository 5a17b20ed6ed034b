"""Wiring: one Runtime holds the database, the adapters, the engine and the Slack app."""

from __future__ import annotations

import logging
from typing import Any

from bot.cloudflare.client import CloudflareClient
from bot.config import Config
from bot.engine.clock import SystemClock
from bot.engine.ports import Clock
from bot.engine.service import ReleaseService
from bot.settings import Settings
from bot.slack.app import create_app
from bot.slack.client import make_client
from bot.slack.notifier import SlackNotifier
from bot.slack.replies import Replier
from bot.tasks import BackgroundTasks
from storage.db import create_engine
from storage.repositories import SqlReleaseRepository

log = logging.getLogger("releasebot")


class Runtime:
    def __init__(self, settings: Settings, config: Config, clock: Clock | None = None) -> None:
        self.settings = settings
        self.config = config
        self.clock = clock or SystemClock()
        self.db = create_engine(settings.database_url)
        self.repo = SqlReleaseRepository(self.db)
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
        self.slack_client = make_client(token, settings.slack_api_url)
        assert settings.cloudflare_api_token is not None
        self.edge = CloudflareClient(
            base_url=settings.cloudflare_api_base_url,
            api_token=settings.cloudflare_api_token,
            account_id=config.cloudflare.account_id,
        )
        self.tasks = BackgroundTasks()
        self.replier = Replier(self.slack_client)
        self.notifier = SlackNotifier(self.slack_client, config, self.repo)
        self.service = ReleaseService(config, self.repo, self.edge, self.notifier, self.clock)
        self.bolt = create_app(self)
        self.bot_user_id: str | None = None

    async def start(self) -> None:
        """Check the Slack token, then resume whatever was in flight before a restart."""
        auth: Any = await self.slack_client.auth_test()
        self.bot_user_id = auth.get("user_id")
        self.tasks.spawn(self._resume(), name="resume")

    async def _resume(self) -> None:
        ended = await self.service.resume_unfinished()
        for release in ended:
            await self.notifier.thread_reply(
                release,
                f"{release.key} was in flight when the bot restarted; it resumed and ended "
                f"{release.state.value.replace('_', ' ')}.",
            )

    async def close(self) -> None:
        await self.tasks.close()
        await self.edge.aclose()
        await self.db.dispose()
