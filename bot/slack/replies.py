"""Private answers to one person, through the Web API (so only ``SLACK_API_URL`` is used)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("releasebot.slack")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked, and where."""

    user_id: str
    channel_id: str | None
    thread_ts: str | None = None


class Replier:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._zones: dict[str, tzinfo] = {}

    async def timezone(self, user_id: str) -> tzinfo:
        """The person's own timezone (``users.info``), so "friday 18:00" means their Friday."""
        if user_id not in self._zones:
            zone: tzinfo = UTC
            try:
                info = await self.client.users_info(user=user_id)
                zone = ZoneInfo(str((info.get("user") or {}).get("tz") or "UTC"))
            except (SlackApiError, ZoneInfoNotFoundError, ValueError) as exc:
                log.info("no timezone for %s (%s); using UTC", user_id, exc)
            self._zones[user_id] = zone
        return self._zones[user_id]

    async def ephemeral(
        self, caller: Caller, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """An ephemeral message in the caller's channel; a DM when the bot cannot post there."""
        kwargs: dict[str, Any] = {"text": text}
        if blocks:
            kwargs["blocks"] = blocks
        if caller.channel_id:
            try:
                await self.client.chat_postEphemeral(
                    channel=caller.channel_id,
                    user=caller.user_id,
                    thread_ts=caller.thread_ts,
                    **kwargs,
                )
                return
            except SlackApiError as exc:
                log.info("ephemeral reply failed (%s); sending a DM", exc.response.get("error"))
        try:
            await self.client.chat_postMessage(channel=caller.user_id, **kwargs)
        except SlackApiError as exc:
            log.warning("could not answer %s: %s", caller.user_id, exc.response.get("error"))
