"""The engine's Notifier over Slack: the release card, thread replies, the audit channel."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config
from bot.engine.model import AuditEntry, Release
from bot.engine.ports import ReleaseRepository, VoteRepository
from bot.slack.blocks.card import release_card

log = logging.getLogger("releasebot.slack")


class SlackNotifier:
    def __init__(
        self,
        client: AsyncWebClient,
        config: Config,
        repo: ReleaseRepository,
        votes: VoteRepository | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.repo = repo
        self.votes = votes
        # One card operation at a time per release, so two quick changes cannot post two cards
        # or land out of order.
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def release_changed(self, release: Release) -> None:
        if release.id is None:
            return
        async with self._locks[release.id]:
            fresh = await self.repo.get(release.id) or release
            votes = await self.votes.votes(release.id) if self.votes is not None else []
            text, blocks = release_card(fresh, votes)
            try:
                if fresh.message_ts and fresh.channel:
                    await self.client.chat_update(
                        channel=fresh.channel, ts=fresh.message_ts, text=text, blocks=blocks
                    )
                else:
                    resp = await self.client.chat_postMessage(
                        channel=self.config.slack.release_channel, text=text, blocks=blocks
                    )
                    await self.repo.set_card(release.id, str(resp["channel"]), str(resp["ts"]))
            except SlackApiError as exc:
                log.warning("could not show the card of %s: %s", fresh.key, _slack_error(exc))

    async def thread_reply(self, release: Release, text: str) -> None:
        fresh = await self.repo.get(release.id) if release.id is not None else None
        target = fresh or release
        try:
            await self.client.chat_postMessage(
                channel=target.channel or self.config.slack.release_channel,
                thread_ts=target.message_ts,
                text=text,
            )
        except SlackApiError as exc:
            log.warning("could not reply in the thread of %s: %s", target.key, _slack_error(exc))

    async def audit_recorded(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        text = "\n".join(audit_line(e) for e in entries)
        try:
            await self.client.chat_postMessage(
                channel=self.config.slack.audit_channel, text=text[:3900]
            )
        except SlackApiError as exc:
            log.warning("could not post to the audit channel: %s", _slack_error(exc))

    async def announce(self, text: str) -> None:
        try:
            await self.client.chat_postMessage(
                channel=self.config.slack.release_channel, text=text[:3900]
            )
        except SlackApiError as exc:
            log.warning("could not post to the release channel: %s", _slack_error(exc))

    async def direct(self, user_id: str, text: str) -> None:
        try:
            await self.client.chat_postMessage(channel=user_id, text=text[:3900])
        except SlackApiError as exc:
            log.warning("could not send a direct message: %s", _slack_error(exc))


def audit_line(entry: AuditEntry) -> str:
    """``R-3 tax-api/staging · release.started (approved → deploying) · by releasebot``."""
    who = entry.actor if entry.actor == "releasebot" else f"<@{entry.actor}>"
    change = f" ({entry.before} → {entry.after})" if entry.before and entry.after else ""
    target = f"{entry.service}/{entry.environment}" if entry.service else ""
    key = entry.release_key or ""
    return f"`{key}` {target} · {entry.action}{change} · by {who}".strip()


def _slack_error(exc: SlackApiError) -> str:
    data = getattr(exc.response, "data", None)
    if isinstance(data, dict):
        return str(data.get("error", "unknown error"))
    return "unknown error"
