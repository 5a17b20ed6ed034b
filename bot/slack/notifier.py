"""The engine's Notifier over Slack: the release card, thread replies, DMs, announcements.

Nothing here blocks a release: each call only records what is owed and returns; background
workers deliver it, retrying through Slack outages. The card shows the newest state the engine
stored (the snapshot it hands over, read again from the database after a failed attempt), so
after any outage it catches up to the latest state in one edit. Messages are sent in the order
they were asked for. (The audit channel has its own durable outbox.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config
from bot.engine.model import AuditEntry, Release
from bot.engine.notices import Notice
from bot.engine.ports import ReleaseRepository, VoteRepository
from bot.engine.rollout import bake_for
from bot.engine.states import State
from bot.metrics import Metrics
from bot.slack.audit_poster import AuditPoster, audit_line
from bot.slack.blocks.approval import approval_request, decided_request, decision_line
from bot.slack.blocks.card import CardLive, release_card
from bot.slack.blocks.common import clip
from bot.slack.render import card_pointer, render

log = logging.getLogger("releasebot.slack")

RETRY_DELAYS = (1, 2, 5, 10, 20, 30, 60)  # seconds; then the delivery is given up, logged
DM_CARD_WAIT = 15.0  # seconds a direct message waits for the card it links to
CARD_WAIT = 180.0  # seconds a thread reply waits for its card to be posted
CARDS_KNOWN = 1000  # cards posted here whose place is remembered (else read from the database)
MAX_TEXT = 3900  # characters of a message's text; a longer one is cut (never mid-entity)


class CardNotPosted(Exception):
    """A thread reply cannot go out before its card exists; retried."""


@dataclass
class _Message:
    describe: str
    send: Callable[[], Awaitable[Any]]


class SlackNotifier:
    def __init__(
        self,
        client: AsyncWebClient,
        config: Config,
        repo: ReleaseRepository,
        votes: VoteRepository | None = None,
        tasks: Any = None,
        delays: Sequence[float] = RETRY_DELAYS,
        audit_poster: AuditPoster | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.repo = repo
        self.votes = votes
        self.tasks = tasks
        self.delays = tuple(delays)
        self._dirty: set[int] = set()
        self._card_workers: set[int] = set()
        self._latest: dict[int, Release] = {}  # the newest stored state, per card to show
        self._cards: dict[int, tuple[str, str]] = {}  # (channel, ts) of cards posted here
        self._decided_votes: dict[int, list[Any]] = {}  # votes of releases past approval
        # a line on the card (Cloudflare busy) until the release changes: (revision, text)
        self._card_notes: dict[int, tuple[int, str]] = {}
        # approval requests posted here with buttons, until edited after the decision:
        # release id -> (channel, ts, text)
        self._asks: dict[int, tuple[str, str, str]] = {}
        self._outbox: asyncio.Queue[_Message] | None = None
        self._sender_running = False
        self.audit_poster = audit_poster
        self.metrics = metrics

    # -- the card ---------------------------------------------------------------------------

    async def release_changed(self, release: Release) -> None:
        if release.id is None:
            return
        known = self._latest.get(release.id)
        if known is None or known.revision <= release.revision:
            self._latest[release.id] = release
        self._dirty.add(release.id)
        if release.id not in self._card_workers:
            self._card_workers.add(release.id)
            self._spawn(self._card_worker(release.id), f"card:{release.id}")

    async def _card_worker(self, release_id: int) -> None:
        """Render and send the card until it shows the stored state (one worker per card)."""
        failures = 0
        try:
            while release_id in self._dirty:
                self._dirty.discard(release_id)
                try:
                    await self._show_card(release_id, reread=failures > 0)
                    failures = 0
                except (TimeoutError, SlackApiError, OSError, aiohttp.ClientError) as exc:
                    self._dirty.add(release_id)
                    if failures >= len(self.delays):
                        log.error("gave up showing the card of R-%s: %s", release_id, _why(exc))
                        self._dirty.discard(release_id)
                        return
                    log.warning("card of R-%s not shown (%s); retrying", release_id, _why(exc))
                    await asyncio.sleep(self.delays[failures])
                    failures += 1
        finally:
            self._card_workers.discard(release_id)
            if release_id not in self._dirty:
                self._latest.pop(release_id, None)

    def _card_live(self, release: Release) -> CardLive:
        """The account and the bakes of the release's policy, for the card's live view."""
        policy = self.config.policies.get(release.policy)
        rollout = policy.rollout if policy is not None else None
        bakes = tuple(bake_for(rollout, pct) for pct in release.plan) if rollout else ()
        return CardLive(
            account_id=self.config.cloudflare.account_id, bakes=bakes, now=datetime.now(UTC)
        )

    async def _show_card(self, release_id: int, reread: bool = False) -> None:
        """Show the newest state handed over; after a failed attempt (time has passed, and
        another replica may have moved the release on) the database's."""
        fresh = None if reread else self._latest.pop(release_id, None)
        if fresh is None or (not fresh.message_ts and release_id not in self._cards):
            fresh = await self.repo.get(release_id)
        if fresh is None:
            return
        votes = await self._votes(fresh)
        note = self._card_notes.get(release_id)
        if note is not None and fresh.revision > note[0]:
            self._card_notes.pop(release_id, None)  # the release moved on since
            note = None
        text, blocks = release_card(
            fresh, votes, note=note[1] if note else None, live=self._card_live(fresh)
        )
        where = self._cards.get(release_id)
        if where is None and fresh.message_ts and fresh.channel:
            where = (fresh.channel, fresh.message_ts)
        if where is not None:
            await self.client.chat_update(channel=where[0], ts=where[1], text=text, blocks=blocks)
        else:
            resp = await self.client.chat_postMessage(
                channel=self.config.slack.release_channel, text=text, blocks=blocks
            )
            channel, ts = str(resp["channel"]), str(resp["ts"])
            await self.repo.set_card(release_id, channel, ts)
            if len(self._cards) >= CARDS_KNOWN:
                self._cards.pop(next(iter(self._cards)))
            self._cards[release_id] = (channel, ts)
        await self._settle_ask(fresh, votes)
        if fresh.state.is_terminal:
            self._decided_votes.pop(release_id, None)

    async def _settle_late(self, release_id: int) -> None:
        """The release may have been decided while its approval request was on its way."""
        try:
            decided = await self.repo.get(release_id)
            if decided is not None:
                await self._settle_ask(decided, await self._votes(decided))
        except (TimeoutError, SlackApiError, OSError, aiohttp.ClientError) as exc:
            log.warning("approval request of R-%s not edited: %s", release_id, _why(exc))

    async def _settle_ask(self, release: Release, votes: Sequence[Any]) -> None:
        """Once the release is decided, its approval request loses its buttons and says who
        decided."""
        ask = self._asks.get(release.id) if release.id is not None else None
        line = decision_line(release, votes) if ask is not None else None
        if ask is None or line is None or release.id is None:
            return
        channel, ts, text = ask
        await self.client.chat_update(
            channel=channel, ts=ts, text=clip(text, MAX_TEXT), blocks=decided_request(text, line)
        )
        self._asks.pop(release.id, None)

    async def _card_note(self, release: Release, text: str) -> None:
        """Show ``text`` on the card until the release changes (no text: take it away)."""
        assert release.id is not None
        if text:
            self._card_notes[release.id] = (release.revision, text)
        elif self._card_notes.pop(release.id, None) is None:
            return  # nothing shown: nothing to take away
        await self.release_changed(release)

    async def _votes(self, release: Release) -> list[Any]:
        """The release's votes; they no longer change once it is past approval, so those are
        read once."""
        if self.votes is None or release.id is None:
            return []
        if release.state in (State.REQUESTED, State.AWAITING_APPROVAL):
            return await self.votes.votes(release.id)
        known = self._decided_votes.get(release.id)
        if known is None:
            known = self._decided_votes[release.id] = await self.votes.votes(release.id)
        return known

    # -- messages, in order -----------------------------------------------------------------

    async def notify(self, notice: Notice) -> None:
        """Render the engine's notice (escaped, in one place) and send its posts, in order."""
        for post in render(notice):
            if post.where == "card":
                if post.release is not None and post.release.id is not None:
                    await self._card_note(post.release, post.text)
            elif post.where == "thread" and post.release is not None:
                await self.thread_reply(post.release, post.text, asks_approval=post.asks_approval)
            elif post.where == "direct" and post.user_id:
                if post.card_channel and post.release is not None:
                    await self.direct_about(
                        post.user_id, post.text, post.release, post.card_channel
                    )
                else:
                    await self.direct(post.user_id, post.text)
            else:
                await self.announce(post.text)

    async def thread_reply(
        self, release: Release, text: str, *, asks_approval: bool = False
    ) -> None:
        """A reply in the card's thread; an approval request carries Approve and Reject and
        is edited once the release is decided."""
        blocks = approval_request(release, clip(text, 2900)) if asks_approval else None

        async def send() -> None:
            target = release
            where = self._cards.get(release.id) if release.id is not None else None
            if where is None and release.id is not None:
                target = await self.repo.get(release.id) or release
                # The card may have been posted while the database was read: look again.
                where = self._cards.get(release.id)
            if where is not None:
                target = release.copy(channel=where[0], message_ts=where[1])
            if target.message_ts is None:
                if target.id in self._card_workers:
                    raise CardNotPosted(target.key)
                log.warning("%s has no card; replying in the channel", target.key)
            resp = await self.client.chat_postMessage(
                channel=target.channel or self.config.slack.release_channel,
                thread_ts=target.message_ts,
                text=clip(text, MAX_TEXT),
                blocks=blocks,
            )
            if blocks is not None and release.id is not None:
                self._asks[release.id] = (str(resp["channel"]), str(resp["ts"]), text)
                self._spawn(self._settle_late(release.id), f"approval-request:{release.id}")

        self._enqueue(_Message(f"a reply in the thread of {release.key}", send))

    async def audit_recorded(self, entries: Sequence[AuditEntry]) -> None:
        if not entries:
            return
        if self.metrics is not None:
            self.metrics.observe_audit(entries)
        if self.audit_poster is not None:
            await self.audit_poster.post(entries)  # durable: an outbox row per record
            return
        text = clip("\n".join(audit_line(e) for e in entries), MAX_TEXT)
        channel = self.config.slack.audit_channel

        async def send() -> None:
            await self.client.chat_postMessage(channel=channel, text=text)

        self._enqueue(_Message("an audit record", send))

    async def announce(self, text: str) -> None:
        channel = self.config.slack.release_channel

        async def send() -> None:
            await self.client.chat_postMessage(channel=channel, text=clip(text, MAX_TEXT))

        self._enqueue(_Message("an announcement", send))

    async def direct(self, user_id: str, text: str) -> None:
        async def send() -> None:
            await self.client.chat_postMessage(channel=user_id, text=clip(text, MAX_TEXT))

        self._enqueue(_Message(f"a direct message to {user_id}", send))

    async def direct_about(
        self, user_id: str, text: str, release: Release, card_channel: str
    ) -> None:
        """A direct message about a release that ends with its card's permalink (asked for
        when it is sent, so a card posted meanwhile is linked), else the card's channel.
        While the card is being posted the message waits for it a little."""
        until = time.monotonic() + DM_CARD_WAIT

        async def send() -> None:
            link = await self._card_permalink(release)
            if link is None and release.id in self._card_workers and time.monotonic() < until:
                raise CardNotPosted(release.key)
            said = clip(text, MAX_TEXT - 300) + card_pointer(card_channel, link)
            await self.client.chat_postMessage(channel=user_id, text=said)

        self._enqueue(_Message(f"a direct message to {user_id}", send))

    async def _card_permalink(self, release: Release) -> str | None:
        """``chat.getPermalink`` of the release's card, or None while it has none."""
        if release.id is not None and self.audit_poster is not None:
            return await self.audit_poster.card_link(release.id)
        where = self._cards.get(release.id) if release.id is not None else None
        if where is None and release.id is not None:
            stored = await self.repo.get(release.id)
            if stored is not None and stored.channel and stored.message_ts:
                where = (stored.channel, stored.message_ts)
        if where is None:
            return None
        try:
            response: Any = await self.client.chat_getPermalink(
                channel=where[0], message_ts=where[1]
            )
        except (TimeoutError, SlackApiError, OSError, aiohttp.ClientError) as exc:
            log.info("no card link for %s: %s", release.key, _why(exc))
            return None
        link = response.get("permalink")
        return link if isinstance(link, str) and link else None

    def _enqueue(self, message: _Message) -> None:
        if self._outbox is None:
            self._outbox = asyncio.Queue()
        self._outbox.put_nowait(message)
        if not self._sender_running:
            self._sender_running = True
            self._spawn(self._sender(), "slack-messages")

    async def _sender(self) -> None:
        assert self._outbox is not None
        try:
            while not self._outbox.empty():
                await self._deliver(self._outbox.get_nowait())
        finally:
            self._sender_running = False

    async def _deliver(self, message: _Message) -> None:
        attempt, waited = 0, 0.0
        while True:
            try:
                await message.send()
                return
            except CardNotPosted:
                # The card is on its way (its worker retries); the reply waits for it.
                if waited > CARD_WAIT:
                    log.error("gave up sending %s: its card never appeared", message.describe)
                    return
                await asyncio.sleep(0.2)
                waited += 0.2
            except (TimeoutError, SlackApiError, OSError, aiohttp.ClientError) as exc:
                if attempt >= len(self.delays):
                    log.error("gave up sending %s: %s", message.describe, _why(exc))
                    return
                log.warning("sending %s failed (%s); retrying", message.describe, _why(exc))
                await asyncio.sleep(self.delays[attempt])
                attempt += 1

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        if self.tasks is not None:
            self.tasks.spawn(coro, name=name)
        else:
            asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]


def _why(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        data = getattr(exc.response, "data", None)
        if isinstance(data, dict):
            return str(data.get("error", "unknown error"))
        return "unknown error"
    return type(exc).__name__
