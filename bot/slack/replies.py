"""Private answers to one person, through the Web API (so only ``SLACK_API_URL`` is used)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

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
