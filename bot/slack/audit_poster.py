"""Audit records for the audit channel, each linked to its release card, never lost.

``post(entries)`` writes one outbox row (``slack_outbox``) and sends it at once; a success marks
it sent. When Slack is down the row stays, and :meth:`AuditPoster.retry_due` (a scheduler job)
sends it again with exponential backoff until Slack takes it — the database, not this
process's memory, holds what still has to go out. Rendering happens at send time, so a record
written during an outage still gets its card's link once the card exists::

    `R-3` tax-api/staging · release.started (approved → deploying) · by releasebot · <link|card>

Links come from ``chat.getPermalink`` for the release's card, cached per release. A record
whose release has no card yet (the card is posted in the background) waits for it, for up to
``CARD_GRACE``, then goes out without the link rather than not at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.engine.model import AuditEntry
from bot.slack.text import code, plain, who
from storage.outbox import OutboxMessage, SqlOutbox, audit_item

log = logging.getLogger("releasebot.slack.audit")

KIND = "audit"
TEXT_MAX = 3900
LEASE = timedelta(seconds=30)  # one attempt's hold on a row (Slack calls time out sooner)
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(minutes=10)
RETRY_EVERY = 2.0  # seconds between two runs of the retry job
CARD_GRACE = timedelta(seconds=60)  # how long a record waits for its release's card
CARD_POLL = timedelta(seconds=1)  # how soon a record waiting for its card is looked at again
PERMALINK_CACHE = 1000  # releases whose card link is remembered
KEEP_SENT = timedelta(days=7)  # sent rows are kept this long (for operators), then pruned
PRUNE_EVERY = timedelta(hours=1)


def audit_line(entry: AuditEntry, seq: int | None = None) -> str:
    """``#41 · R-3 tax-api/staging · release.started (approved → deploying) · by releasebot``."""
    return item_line(audit_item(seq or 0, entry) | ({} if seq else {"seq": None}))


def item_line(item: dict[str, Any]) -> str:
    """One outbox item (plain data) as a line for the audit channel, everything escaped."""
    if "line" in item and "action" not in item:
        return str(item["line"])  # written before items held plain data
    actor = str(item.get("actor") or "")
    before, after = item.get("before"), item.get("after")
    change = f" ({plain(before)} → {plain(after)})" if before and after else ""
    target = "/".join(plain(p) for p in (item.get("service"), item.get("environment")) if p)
    key = f"{code(item['release_key'])} " if item.get("release_key") else ""
    seq = f"#{item['seq']} · " if item.get("seq") else ""
    return f"{seq}{key}{target} · {plain(item.get('action', ''))}{change} · by {who(actor)}".strip()


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failed attempt: 5 s, 10 s, 20 s, ... at most 10 min."""
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))


class _CardPending(Exception):
    """A record's release has no card yet."""


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class AuditPoster:
    """``repo`` finds a release's card (``get``); ``clock`` has ``now()``. With ``tasks`` (a
    ``bot.tasks.BackgroundTasks``) :meth:`post` returns once the records are stored and sends
    them in the background, one message at a time in the order posted, so a slow or absent
    Slack never holds up a release; without it, it sends before returning."""

    def __init__(
        self,
        client: Any,
        channel: str,
        outbox: SqlOutbox,
        repo: Any,
        clock: Any = None,
        lease: timedelta = LEASE,
        tasks: Any = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.outbox = outbox
        self.repo = repo
        self.clock = clock or _Clock()
        self.lease = lease
        self.tasks = tasks
        self._sending = asyncio.Lock()  # FIFO: messages leave in the order they were posted
        self._flushing = asyncio.Lock()  # one pass over the outbox at a time, in seq order
        self._links: dict[int, str] = {}
        self._pruned_at: datetime | None = None

    async def post(self, entries: Sequence[AuditEntry]) -> None:
        """The records and their outbox rows are committed (with the change they describe):
        send what is owed now, in ``seq`` order. Never raises: what could not be sent is
        retried by :meth:`retry_due`."""
        if not entries:
            return
        if self.tasks is None:
            await self.retry_due()
        else:
            self.tasks.spawn(self.retry_due(), name="audit-post")

    async def retry_due(self, limit: int = 20) -> int:
        """Send the messages whose retry time has come (the scheduler's job, and after each
        change), oldest first; how many were sent. Never raises."""
        async with self._flushing:
            return await self._flush(limit)

    async def _flush(self, limit: int) -> int:
        try:
            due = await self.outbox.claim_due(self.clock.now(), self.lease, limit)
        except Exception:
            log.exception("reading the Slack outbox failed; retrying at the next run")
            return 0
        sent = 0
        delivered: list[int] = []
        marked_at = self.clock.now()
        for i, message in enumerate(due):
            async with self._sending:
                error = await self._attempt(message)
            if error is None:
                delivered.append(message.id)
                sent += 1
                if self.clock.now() - marked_at > self.lease / 2:
                    # a slow pass: mark what went out while the rest are still leased to us
                    await self._mark_sent(delivered)
                    delivered, marked_at = [], self.clock.now()
                continue
            await self._record(message, error)
            # In order: nothing after a record that did not go out goes before it.
            await self._hold(due[i + 1 :])
            break
        await self._mark_sent(delivered)
        await self._prune()
        return sent

    async def _mark_sent(self, delivered: Sequence[int]) -> None:
        """Mark what this pass posted as sent, in one transaction (a crash before it posts
        them again: at least once, never lost)."""
        try:
            await self.outbox.sent_many(delivered, self.clock.now())
        except Exception:
            log.exception("posted audit records but could not mark them sent")

    async def _hold(self, rest: Sequence[OutboxMessage]) -> None:
        retry = self.clock.now() + CARD_POLL
        for message in rest:
            try:
                await self.outbox.postpone(message.id, retry, "waiting for an earlier record")
            except Exception:
                log.exception("could not hold back audit records; the lease brings them back")

    async def _prune(self) -> None:
        now = self.clock.now()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        try:
            await self.outbox.prune(now - KEEP_SENT)
        except Exception:
            log.exception("pruning the Slack outbox failed")

    async def _attempt(self, message: OutboxMessage) -> BaseException | None:
        """Send the message (in order: under ``_sending``); the error, if it was not sent."""
        now = self.clock.now()
        try:
            await self._send(
                message.channel,
                message.payload,
                wait_for_card=now - message.created_at < CARD_GRACE,
            )
        except Exception as exc:
            return exc
        return None

    async def _record(self, message: OutboxMessage, error: BaseException) -> None:
        """Store why the attempt did not go out: waiting for its card, or to be retried."""
        now = self.clock.now()
        if isinstance(error, _CardPending):
            try:
                await self.outbox.postpone(message.id, now + CARD_POLL, str(error))
            except Exception:
                log.exception("could not postpone audit records; the lease brings them back")
            return
        why = _why(error)
        retry_at = now + backoff(message.attempts)
        log.warning(
            "audit records not posted (attempt %s: %s); retrying at %s",
            message.attempts,
            why,
            retry_at.isoformat(timespec="seconds"),
        )
        try:
            await self.outbox.failed(message.id, retry_at, why)
        except Exception:
            log.exception("could not store the retry time; the lease brings it back")

    async def _send(self, channel: str, payload: dict[str, Any], wait_for_card: bool) -> None:
        lines = []
        for item in payload.get("items", []):
            line = item_line(item)
            release_id = item.get("release_id")
            if isinstance(release_id, int):
                has_card, link = await self._card(release_id)
                if not has_card and wait_for_card:
                    raise _CardPending(f"waiting for the card of R-{release_id}")
                if link:
                    line += f" · <{link}|card>"
            lines.append(line)
        text = "\n".join(lines)[:TEXT_MAX]
        await self.client.chat_postMessage(
            channel=channel, text=text, unfurl_links=False, unfurl_media=False
        )

    async def card_link(self, release_id: int) -> str | None:
        """The permalink of the release's card (cached), or None while it has none."""
        return (await self._card(release_id))[1]

    async def _card(self, release_id: int) -> tuple[bool, str | None]:
        """(whether the release's card is posted, its permalink if Slack gave one)."""
        if release_id in self._links:
            return True, self._links[release_id]
        try:
            release = await self.repo.get(release_id)
        except Exception:
            log.exception("could not read R-%s for its card link", release_id)
            return True, None
        if release is None:
            return True, None  # nothing will ever be posted for it
        if not release.channel or not release.message_ts:
            return False, None
        try:
            response: Any = await self.client.chat_getPermalink(
                channel=release.channel, message_ts=release.message_ts
            )
        except (TimeoutError, SlackApiError, OSError) as exc:
            log.info("no card link for R-%s: %s", release_id, _why(exc))
            return True, None
        link = response.get("permalink")
        if not isinstance(link, str) or not link:
            return True, None
        if len(self._links) >= PERMALINK_CACHE:
            self._links.pop(next(iter(self._links)))
        self._links[release_id] = link
        return True, link


def _why(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        data = getattr(exc.response, "data", None)
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])
        return "Slack refused"
    return type(exc).__name__
