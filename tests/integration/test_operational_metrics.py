"""The measurements an operator alerts on: how late timers run, what the outboxes still owe
(and for how long), webhook deliveries by outcome, and the waits Cloudflare's retry policy
spends or refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.engine.errors import EdgeUnavailable
from bot.metrics import Metrics
from bot.webhooks.sender import Delivery
from storage.tables import slack_outbox, webhook_outbox
from storage.timers import SqlTimerRepository
from tests.unit.test_cloudflare_retries import Script, client, ok

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_timer_lateness_is_observed_for_each_claimed_timer(engine: AsyncEngine) -> None:
    metrics = Metrics(process=False)
    timers = SqlTimerRepository(engine, on_claimed=metrics.observe_timers)
    await timers.schedule("advance", NOW - timedelta(seconds=2))
    await timers.schedule("expire", NOW - timedelta(seconds=40))
    claimed = await timers.claim_due(NOW, "me", timedelta(seconds=30), 100)
    assert sorted(t.kind for t in claimed) == ["advance", "expire"]
    assert value(metrics, "releasebot_timer_lateness_seconds_sum", kind="advance") == 2
    assert value(metrics, "releasebot_timer_lateness_seconds_bucket", kind="advance", le="1.0") == 0
    assert value(metrics, "releasebot_timer_lateness_seconds_sum", kind="expire") == 40
    assert await timers.claim_due(NOW, "me", timedelta(seconds=30), 100) == []
    assert value(metrics, "releasebot_timer_lateness_seconds_count", kind="advance") == 1


async def test_webhook_deliveries_are_counted_by_outcome() -> None:
    class Sender:
        async def deliver_due(self, now: datetime) -> list[Delivery]:
            return [
                Delivery(1, "pager", "rolled_back", 1, "delivered", 202),
                Delivery(2, "audit", "step", 3, "retry", 503, "HTTP 503"),
                Delivery(3, "audit", "step", 8, "failed", 500, "HTTP 500"),
                Delivery(4, "audit", "approved", 1, "retry", None, "timeout"),
            ]

    metrics, sender = Metrics(process=False), Sender()
    metrics.observe_deliveries(await sender.deliver_due(NOW))  # WebhookSender(on_delivered=...)
    name = "releasebot_webhook_deliveries_total"
    assert value(metrics, name, webhook="pager", outcome="delivered") == 1
    assert value(metrics, name, webhook="audit", outcome="retry") == 2
    assert value(metrics, name, webhook="audit", outcome="failed") == 1


async def test_the_outbox_backlog_and_its_oldest_row(engine: AsyncEngine) -> None:
    metrics = Metrics(process=False)
    await metrics.refresh_backlog(engine, NOW)
    for outbox in ("slack", "webhook"):
        assert value(metrics, "releasebot_outbox_backlog", outbox=outbox) == 0
        assert value(metrics, "releasebot_outbox_oldest_age_seconds", outbox=outbox) == 0

    def slack_row(minutes_old: int, sent: bool) -> dict[str, Any]:
        created = NOW - timedelta(minutes=minutes_old)
        return {
            "kind": "audit",
            "channel": "C0AUDIT",
            "payload": {},
            "created_at": created,
            "next_attempt_at": None if sent else NOW,
            "sent_at": NOW if sent else None,
        }

    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(slack_outbox),
            [slack_row(90, sent=True), slack_row(10, sent=False), slack_row(3, sent=False)],
        )
        await conn.execute(
            sa.insert(webhook_outbox),
            [
                {
                    "webhook": "audit",
                    "event": "step",
                    "payload": {},
                    "created_at": NOW - timedelta(seconds=30),
                    "next_attempt_at": NOW + timedelta(seconds=5),
                },
                {
                    "webhook": "audit",
                    "event": "step",
                    "payload": {},
                    "created_at": NOW - timedelta(hours=5),
                    "next_attempt_at": None,
                    "failed_at": NOW,
                },
            ],
        )
    await metrics.refresh_backlog(engine, NOW)
    assert value(metrics, "releasebot_outbox_backlog", outbox="slack") == 2
    assert value(metrics, "releasebot_outbox_oldest_age_seconds", outbox="slack") == 600
    assert value(metrics, "releasebot_outbox_backlog", outbox="webhook") == 1
    assert value(metrics, "releasebot_outbox_oldest_age_seconds", outbox="webhook") == 30


async def test_the_backlog_keeps_its_last_values_when_the_database_is_gone() -> None:
    metrics = Metrics(process=False)
    metrics.outbox_backlog.labels("slack").set(7)
    broken = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    try:
        await metrics.refresh_backlog(broken, NOW)
    finally:
        await broken.dispose()
    assert value(metrics, "releasebot_outbox_backlog", outbox="slack") == 7


async def test_cloudflare_retry_waits_by_reason_and_refused_waits() -> None:
    metrics = Metrics(process=False)
    script = Script(
        httpx.Response(503, headers={"retry-after": "3"}),  # waits what Cloudflare asks
        httpx.Response(502),  # waits the backoff
        ok({"items": []}),
    )
    sleeps: list[float] = []
    async with client(script, sleeps, metrics=metrics) as cf:
        assert await cf.list_versions("tax-api") == []
    assert sleeps == [3.0, 0.5]
    name = "releasebot_cloudflare_retry_wait_seconds"
    assert value(metrics, f"{name}_sum", reason="retry_after") == 3
    assert value(metrics, f"{name}_sum", reason="backoff") == 0.5
    assert value(metrics, "releasebot_cloudflare_retry_refused_total") == 0

    refused = Script(httpx.Response(429, headers={"retry-after": "300"}))
    async with client(refused, [], metrics=metrics) as cf:
        with pytest.raises(EdgeUnavailable, match="asked to wait 300 s"):
            await cf.list_versions("tax-api")
    assert value(metrics, "releasebot_cloudflare_retry_refused_total") == 1
