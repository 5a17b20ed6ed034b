"""Delivering the webhook outbox: claim due rows, POST them signed, retry with backoff.

Each delivery is one ``POST`` of the row's JSON to the webhook's ``url``, signed as the
`Standard Webhooks <https://www.standardwebhooks.com>`_ specification says::

    Content-Type: application/json
    webhook-id: 17                       (the outbox row id: one per event, the same on retries)
    webhook-timestamp: 1795694400        (Unix seconds of this attempt)
    webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">

and, deprecated, kept for one release for receivers that still check them::

    X-Releasebot-Event: rolled_back
    X-Releasebot-Timestamp: 1795694400   (the same as webhook-timestamp)
    X-Releasebot-Signature: sha256=<hex HMAC-SHA256 of the raw body alone>
    Idempotency-Key: 17                  (the same as webhook-id)

The secret (the value of the webhook's ``secret_env``) is ``whsec_`` and the base64 of 24 to 64
random bytes: the HMAC key is those bytes. For a rotation the variable holds several secrets,
newest first, separated by spaces, and ``webhook-signature`` carries one ``v1,`` signature per
secret (space separated), so a receiver holding any one of them verifies. A value without any
``whsec_`` secret is one plain secret, taken whole as before: its UTF-8 bytes are the key of
both signatures. ``X-Releasebot-Signature`` is keyed by the last secret of the list as it is
written (``whsec_`` prefix included), which for a single plain secret is what it always was.

A receiver checks ``webhook-signature`` over the exact bytes it got (the reference libraries
do, with a 5-minute tolerance on ``webhook-timestamp`` against replays) and ignores a
``webhook-id`` it has seen: delivery is at least once (an answer lost on the way back is sent
again) and not ordered between events.

A 2xx answer marks the row delivered. Anything else (another status, a timeout after the
webhook's ``timeout``, a connection error) is retried after an exponential backoff with
jitter — never sooner than the receiver's ``Retry-After`` — until ``max_attempts``; then the
row is marked failed and an error is logged. Redirects are not followed.

Rows are claimed with a lease, like timers (:mod:`storage.timers`): PostgreSQL skips rows
another replica has locked (``FOR UPDATE SKIP LOCKED``), SQLite serialises claims with its
write lock, and the claiming UPDATE re-checks that the row is still free. A replica that dies
mid-send leaves the row to be claimed again when its lease runs out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.cloudflare.transport import retry_after_seconds
from bot.config import Webhook
from bot.settings import secret_from_env
from bot.webhooks.outbox import OutboxItem, item_from_row
from bot.webhooks.payloads import body
from storage.db import claim_rows, writing
from storage.tables import webhook_outbox

log = logging.getLogger("releasebot.webhooks")

# Standard Webhooks (https://www.standardwebhooks.com)
ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
KEY_BYTES_MIN = 24  # the specification: at least 24 bytes (192 bits), at most 64 (512 bits)
KEY_BYTES_MAX = 64

# Deprecated: sent for one more release next to the Standard Webhooks headers.
SIGNATURE_HEADER = "X-Releasebot-Signature"
TIMESTAMP_HEADER = "X-Releasebot-Timestamp"
EVENT_HEADER = "X-Releasebot-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"

BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(minutes=15)
RETRY_AFTER_CAP = timedelta(hours=1)  # a longer Retry-After is taken as an hour
LEASE_MARGIN = timedelta(seconds=30)  # a claim outlives the longest timeout by this much
ERROR_MAX = 300


class SecretError(ValueError):
    """A webhook secret that cannot be used; the message never holds the secret."""


def split_secrets(value: str) -> list[str]:
    """The secrets a ``secret_env`` value holds, newest first.

    A value with a ``whsec_`` secret in it is a list separated by whitespace; any other value
    is one plain secret, taken whole (spaces and all), as before Standard Webhooks.
    """
    parts = value.split()
    if any(part.startswith(SECRET_PREFIX) for part in parts):
        return parts
    return [value]


def signing_key(secret: str) -> bytes:
    """The HMAC key of one secret: for ``whsec_<base64>`` the decoded bytes (24 to 64 of
    them), for a plain secret its UTF-8 bytes. :class:`SecretError` when it is malformed."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        # standard base64, padding optional (the reference libraries accept it unpadded)
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError("the part after whsec_ is not base64") from None
    if not KEY_BYTES_MIN <= len(key) <= KEY_BYTES_MAX:
        raise SecretError(
            f"it holds {len(key)} bytes; a whsec_ secret holds {KEY_BYTES_MIN} to "
            f"{KEY_BYTES_MAX} random bytes"
        )
    return key


@dataclass(frozen=True, slots=True)
class WebhookCredentials:
    """A webhook's secrets, read from the environment at start.

    ``secret`` is the variable's value as it is; ``keys`` the HMAC keys of the secrets in it,
    newest first (one ``webhook-signature`` each); ``legacy`` the secret that keys the
    deprecated ``X-Releasebot-Signature`` (the last one, as written).
    """

    secret: SecretStr
    routing_key: SecretStr | None = None
    keys: tuple[bytes, ...] = field(default=(), repr=False)
    legacy: SecretStr | None = None

    @classmethod
    def parse(cls, secret: SecretStr, routing_key: SecretStr | None = None) -> WebhookCredentials:
        """Credentials from the variable's value; :class:`SecretError` when a secret in it is
        malformed (the message says which one by its place in the list, never by value)."""
        secrets = split_secrets(secret.get_secret_value())
        keys = []
        for i, one in enumerate(secrets):
            try:
                keys.append(signing_key(one))
            except SecretError as exc:
                which = f"secret {i + 1} of {len(secrets)} " if len(secrets) > 1 else ""
                raise SecretError(f"{which}is not a valid whsec_ secret: {exc}") from None
        return cls(secret, routing_key, tuple(keys), SecretStr(secrets[-1]))

    def legacy_secret(self) -> str:
        """The secret keying ``X-Releasebot-Signature``."""
        if self.legacy is not None:
            return self.legacy.get_secret_value()
        return split_secrets(self.secret.get_secret_value())[-1]

    def signing_keys(self) -> tuple[bytes, ...]:
        """The HMAC keys of ``webhook-signature``, newest first."""
        if self.keys:
            return self.keys
        return tuple(signing_key(s) for s in split_secrets(self.secret.get_secret_value()))


def load_credentials(
    webhooks: Sequence[Webhook],
) -> tuple[dict[str, WebhookCredentials], list[str]]:
    """Each webhook's secrets from the environment variables its config names.

    Returns the credentials by webhook name and one line per missing or malformed variable
    (naming the variable and the webhook, never a value), for the start-up check.
    """
    found: dict[str, WebhookCredentials] = {}
    problems = []
    for i, hook in enumerate(webhooks):
        where = f"webhooks.{i} ({hook.name})"
        secret = secret_from_env(hook.secret_env)
        if secret is None:
            problems.append(f"{hook.secret_env} is not set (the HMAC secret of {where})")
        routing_key = secret_from_env(hook.routing_key_env) if hook.routing_key_env else None
        if hook.format == "pagerduty" and routing_key is None:
            problems.append(
                f"{hook.routing_key_env} is not set (the PagerDuty routing key of {where})"
            )
        if secret is not None:
            try:
                found[hook.name] = WebhookCredentials.parse(secret, routing_key)
            except SecretError as exc:
                joint = " " if str(exc).startswith("is ") else ": "
                problems.append(f"{hook.secret_env}{joint}{exc} (the HMAC secret of {where})")
    return found, problems


def secret_values(credentials: Mapping[str, WebhookCredentials]) -> list[str]:
    """Every secret value, for the log scrubber (``bot.logs.configure``)."""
    values = []
    for creds in credentials.values():
        whole = creds.secret.get_secret_value()
        values.append(whole)
        for one in split_secrets(whole):
            values.append(one)
            if one.startswith(SECRET_PREFIX) and len(one) > len(SECRET_PREFIX):
                values.append(one[len(SECRET_PREFIX) :])
        if creds.routing_key is not None:
            values.append(creds.routing_key.get_secret_value())
    return list(dict.fromkeys(values))


def standard_signature(keys: Sequence[bytes], msg_id: str, timestamp: int, raw_body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of
    ``{msg_id}.{timestamp}.{body}``, one per key, space separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + raw_body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


def sign(secret: str, raw_body: bytes) -> str:
    """The deprecated ``X-Releasebot-Signature`` value: ``sha256=`` and the hex HMAC-SHA256
    of the body alone (no id, no timestamp), keyed by the secret's UTF-8 bytes."""
    return "sha256=" + hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify(secret: str, raw_body: bytes, signature: str) -> bool:
    """What a receiver of the deprecated header does: compare in constant time."""
    return hmac.compare_digest(sign(secret, raw_body), signature)


def backoff(
    attempt: int,
    base: timedelta,
    cap: timedelta,
    rng: random.Random,
    retry_after: float | None = None,
) -> timedelta:
    """The wait after failed attempt ``attempt`` (1-based): ``base * 2**(attempt-1)`` capped at
    ``cap``, half of it fixed and half random ("equal jitter"), so retries spread out without
    ever coming at once; never shorter than ``Retry-After`` (itself taken as at most an hour).
    """
    ceiling = min(cap, base * 2 ** (attempt - 1))
    wait = ceiling / 2 + ceiling / 2 * rng.random()
    if retry_after is not None:
        wait = max(wait, min(timedelta(seconds=retry_after), RETRY_AFTER_CAP))
    return wait


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one attempt at one outbox row came to."""

    id: int
    webhook: str
    event: str
    attempt: int
    outcome: str  # "delivered", "retry" or "failed" (given up)
    status: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


class WebhookSender:
    """Sends due outbox rows; call :meth:`deliver_due` from the scheduler (every second)."""

    def __init__(
        self,
        engine: AsyncEngine,
        webhooks: Sequence[Webhook],
        credentials: Mapping[str, WebhookCredentials],
        *,
        owner: str,
        client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
        backoff_base: timedelta = BACKOFF_BASE,
        backoff_cap: timedelta = BACKOFF_CAP,
        batch: int = 50,
        concurrency: int = 10,
        on_delivered: Callable[[Sequence[Delivery]], None] | None = None,
    ) -> None:
        """``on_delivered`` hears of each pass's outcomes (``Metrics.observe_deliveries``)."""
        self._engine = engine
        self._on_delivered = on_delivered
        self._webhooks = {hook.name: hook for hook in webhooks}
        self._credentials = dict(credentials)
        self.owner = owner
        self._client = client or httpx.AsyncClient(
            follow_redirects=False, headers={"User-Agent": "releasebot-webhooks"}
        )
        self._owns_client = client is None
        self._rng = rng or random.Random()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.batch = batch
        self._concurrency = concurrency
        longest = max((h.timeout for h in self._webhooks.values()), default=timedelta(seconds=5))
        self.lease = longest + LEASE_MARGIN
        self._secrets = secret_values(self._credentials)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- claiming ---------------------------------------------------------------------------

    async def claim_due(self, now: datetime) -> list[OutboxItem]:
        """Lease up to ``batch`` due rows to this sender (counting the attempt), oldest first."""
        t = webhook_outbox.c
        free = sa.or_(t.claimed_until.is_(None), t.claimed_until < now)
        rows = await claim_rows(
            self._engine,
            webhook_outbox,
            sa.and_(t.next_attempt_at <= now, free),
            (t.next_attempt_at, t.id),
            self.batch,
            {
                "claimed_by": self.owner,
                "claimed_until": now + self.lease,
                "attempts": t.attempts + 1,
            },
        )
        claimed = [item_from_row(row) for row in rows]
        return sorted(claimed, key=lambda item: item.id)

    async def _finish(self, item: OutboxItem, **values: Any) -> bool:
        """Record an attempt's end, if the row is still this sender's claim."""
        t = webhook_outbox.c
        async with writing(self._engine) as conn:
            result = await conn.execute(
                sa.update(webhook_outbox)
                .where(
                    t.id == item.id,
                    t.claimed_by == self.owner,
                    t.attempts == item.attempts,
                    t.delivered_at.is_(None),
                )
                .values(claimed_by=None, claimed_until=None, **values)
            )
            return bool(result.rowcount)

    # -- sending ----------------------------------------------------------------------------

    async def deliver_due(self, now: datetime) -> list[Delivery]:
        """Send every due row once (concurrently; each bounded by its webhook's timeout) and
        record the outcomes. A failing or slow receiver only delays its own rows."""
        items = await self.claim_due(now)
        if not items:
            return []
        gate = asyncio.Semaphore(self._concurrency)
        started = time.monotonic()

        async def one(item: OutboxItem) -> Delivery:
            async with gate:
                # the time of this attempt: a row that waited for the gate is not stamped early
                at = now + timedelta(seconds=time.monotonic() - started)
                return await self._deliver(item, at)

        deliveries = list(await asyncio.gather(*(one(item) for item in items)))
        if self._on_delivered is not None:
            try:
                self._on_delivered(deliveries)
            except Exception:
                log.exception("observing webhook deliveries failed")
        return deliveries

    async def _deliver(self, item: OutboxItem, now: datetime) -> Delivery:
        started = time.monotonic()
        hook = self._webhooks.get(item.webhook)
        if hook is None:
            # The config no longer has this webhook: nowhere to send it, ever.
            dropped = f"webhook '{item.webhook}' is no longer configured"
            await self._finish(item, next_attempt_at=None, failed_at=now, last_error=dropped)
            log.error("webhook event %d dropped: %s", item.id, dropped)
            return Delivery(
                item.id, item.webhook, item.event, item.attempts, "failed", None, dropped
            )
        status, error, retry_after = await self._post(hook, item, now)
        done = now + timedelta(seconds=time.monotonic() - started)
        if error is None:
            await self._finish(
                item, next_attempt_at=None, delivered_at=done, last_status=status, last_error=None
            )
            log.info(
                "webhook %s: %s event %d delivered (attempt %d)",
                hook.name,
                item.event,
                item.id,
                item.attempts,
            )
            return Delivery(item.id, hook.name, item.event, item.attempts, "delivered", status)
        if item.attempts >= hook.max_attempts:
            await self._finish(
                item, next_attempt_at=None, failed_at=done, last_status=status, last_error=error
            )
            log.error(
                "webhook %s: gave up on %s event %d after %d attempts: %s",
                hook.name,
                item.event,
                item.id,
                item.attempts,
                error,
            )
            return Delivery(item.id, hook.name, item.event, item.attempts, "failed", status, error)
        retry_at = done + self.delay(item.attempts, retry_after)
        await self._finish(item, next_attempt_at=retry_at, last_status=status, last_error=error)
        log.warning(
            "webhook %s: %s event %d attempt %d of %d failed (%s); next at %s",
            hook.name,
            item.event,
            item.id,
            item.attempts,
            hook.max_attempts,
            error,
            retry_at.isoformat(),
        )
        return Delivery(
            item.id, hook.name, item.event, item.attempts, "retry", status, error, retry_at
        )

    def delay(self, attempt: int, retry_after: float | None = None) -> timedelta:
        """The wait after failed attempt ``attempt``; see :func:`backoff`."""
        return backoff(attempt, self.backoff_base, self.backoff_cap, self._rng, retry_after)

    async def _post(
        self, hook: Webhook, item: OutboxItem, now: datetime
    ) -> tuple[int | None, str | None, float | None]:
        """One POST: (status, error or None on 2xx, Retry-After seconds)."""
        creds = self._credentials.get(hook.name)
        if creds is None:
            return None, f"the secret ({hook.secret_env}) is not set", None
        routing_key = creds.routing_key.get_secret_value() if creds.routing_key else None
        if hook.format == "pagerduty" and not routing_key:
            return None, f"the routing key ({hook.routing_key_env}) is not set", None
        raw = body(hook, item.payload, routing_key)
        msg_id = str(item.id)  # one per event and webhook; the same on every retry
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            ID_HEADER: msg_id,
            STANDARD_TIMESTAMP_HEADER: str(timestamp),
            STANDARD_SIGNATURE_HEADER: standard_signature(
                creds.signing_keys(), msg_id, timestamp, raw
            ),
            # deprecated: sent in this release, removed in the next
            EVENT_HEADER: item.event,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(creds.legacy_secret(), raw),
            IDEMPOTENCY_HEADER: msg_id,
        }
        seconds = hook.timeout.total_seconds()
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange.
            async with asyncio.timeout(seconds):
                response = await self._client.post(
                    hook.url, content=raw, headers=headers, timeout=seconds
                )
        except (TimeoutError, httpx.TimeoutException):
            return None, f"no answer within {seconds:g}s", None
        except httpx.HTTPError as exc:
            return None, self._clean(hook, f"{type(exc).__name__}: {exc}".rstrip(": ")), None
        if 200 <= response.status_code < 300:
            return response.status_code, None, None
        error = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        return response.status_code, error, retry_after_seconds(response.headers.get("Retry-After"))

    def _clean(self, hook: Webhook, text: str) -> str:
        """An error fit to store and log: no URL (it may carry a token), no secret, short."""
        text = text.replace(hook.url, f"<{hook.name} url>")
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:ERROR_MAX]
