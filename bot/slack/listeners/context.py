"""What a listener may use: the one typed view of the runtime the listeners are given."""

from __future__ import annotations

from typing import Protocol

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Config
from bot.engine.ports import Clock
from bot.engine.service import ReleaseService
from bot.slack.replies import Replier
from bot.slack.throttle import PersonLimit
from bot.tasks import BackgroundTasks


class Listening(Protocol):
    """The runtime as the listeners see it (read-only)."""

    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def db(self) -> AsyncEngine: ...

    @property
    def slack_client(self) -> AsyncWebClient: ...

    @property
    def tasks(self) -> BackgroundTasks: ...

    @property
    def replier(self) -> Replier: ...

    @property
    def service(self) -> ReleaseService: ...

    @property
    def read_limit(self) -> PersonLimit: ...
