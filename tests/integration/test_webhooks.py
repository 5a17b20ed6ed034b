"""Outgoing webhooks end to end, on SQLite and PostgreSQL: the engine queues release events in
the outbox, the sender POSTs them signed to a real HTTP receiver, retries failures with backoff,
gives up after ``max_attempts``, and never lets a slow receiver hold up a release.

The receivers check the Standard Webhooks headers with the specification's reference library
(``standardwebhooks`` from PyPI), never with the bot's own code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import webhooks as reference
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.config import Config, parse_config
from bot.engine.model import AuditEntry, Release, VersionShare
from bot.engine.service import DeployRequest, ReleaseService
from bot.engine.states import State
from bot.webhooks import SqlWebhookOutbox, WebhookSender, load_credentials
from storage.db import reading
from storage.outbox import OutboxWriter
from storage.rails import SqlRailsRepository
from storage.repositories import SqlReleaseRepository, SqlVoteRepository
from storage.tables import webhook_outbox
from tests.fakes import (
    FakeClock,
    FakeDirectory,
    FakeEdge,
    FakeTimers,
    RecordingNotifier,
)
from tests.fixtures.servers import ServerThread, free_port

SECRET = "whsec-0123456789abcdef"
OTHER_SECRET = "whsec-fedcba9876543210"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
# Standard Webhooks secrets: whsec_ and the base64 of 32 random bytes
WHSEC = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
WHSEC_OLD = "whsec_" + base64.b64encode(bytes(range(101, 133))).decode()


# -- a receiver ------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """A webhook receiver: records every request, answers from ``plan`` (then 200)."""

    def __init__(self) -> None:
        self.plan: list[Answer] = []
        self.got: list[Received] = []

    async def hook(self, request: Request) -> Response:
        raw = await request.body()
        self.got.append(Received(request.url.path, dict(request.headers), raw))
        answer = self.plan.pop(0) if self.plan else Answer()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return Response(status_code=answer.status, headers=answer.headers)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hook", self.hook, methods=["POST"]),
                Route("/chat", self.hook, methods=["POST"]),
                Route("/pagerduty", self.hook, methods=["POST"]),
            ]
        )


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with ServerThread(rec.app()) as server:
        yield rec, server.url


# -- the world -------------------------------------------------------------------------------

BASE = {
    "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
    "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
    "policies": {"staging": {"approvals_required": 0}},
    "services": {
        "tax-api": {
            "environments": {
                "staging": {
                    "script": "tax-api-staging",
                    "policy": "staging",
                    "health_url": "https://tax-api-staging.example.workers.dev/healthz",
                }
            }
        }
    },
}
ALL_EVENTS = ["requested", "approved", "step", "succeeded", "rolled_back", "failed"]


def config_with(*hooks: dict[str, Any]) -> Config:
    return parse_config({**BASE, "webhooks": list(hooks)}, "test")


@dataclass
class World:
    config: Config
    clock: FakeClock
    edge: FakeEdge
    service: ReleaseService
    outbox: SqlWebhookOutbox
    sender: WebhookSender
    engine: AsyncEngine

    async def deploy(self, tag: str = "v1.4.2") -> Release:
        release = await self.service.request_deploy(DeployRequest("tax-api", tag, "U0CAROL"))
        assert release.id is not None
        return await self.service.kick(release.id)

    async def rows(self) -> list[dict[str, Any]]:
        async with reading(self.engine) as conn:
            result = await conn.execute(sa.select(webhook_outbox).order_by(webhook_outbox.c.id))
            return [dict(r) for r in result.mappings()]


@pytest.fixture
async def make_world(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RB_HOOK_SECRET", SECRET)
    monkeypatch.setenv("RB_CHAT_SECRET", OTHER_SECRET)
    monkeypatch.setenv("RB_PD_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("RB_STD_SECRET", WHSEC)
    monkeypatch.setenv("RB_ROTATING_SECRET", f"{WHSEC} {WHSEC_OLD}")
    senders: list[WebhookSender] = []

    def build(
        *hooks: dict[str, Any], owner: str = "replica-a", start: datetime | None = None
    ) -> World:
        config = config_with(*hooks)
        clock = FakeClock(start)
        edge = FakeEdge()
        stable = edge.add_version("tax-api-staging", "v1.4.1")
        edge.add_version("tax-api-staging", "v1.4.2")
        edge.add_version("tax-api-staging", "v1.4.3")
        edge.put_live("tax-api-staging", VersionShare(stable, 100))
        outbox = SqlWebhookOutbox(engine, config.webhooks, clock)
        # the events are written in the same transaction as the change they are about
        writer = OutboxWriter(None, outbox.rows_for, clock.now)
        repo = SqlReleaseRepository(engine, writer)
        service = ReleaseService(
            config,
            repo,
            edge,
            RecordingNotifier(),
            clock,
            votes=SqlVoteRepository(engine, writer),
            timers=FakeTimers(),
            rails=SqlRailsRepository(engine, writer),
            directory=FakeDirectory({}),
            prober=edge,
        )
        credentials, problems = load_credentials(config.webhooks)
        assert problems == []
        sender = WebhookSender(
            engine, config.webhooks, credentials, owner=owner, rng=random.Random(7)
        )
        senders.append(sender)
        return World(config, clock, edge, service, outbox, sender, engine)

    yield build
    for sender in senders:
        await sender.aclose()


def hook(base: str, /, **changes: Any) -> dict[str, Any]:
    """A releasebot-format webhook to ``base``/hook, with ``changes``."""
    values: dict[str, Any] = {
        "name": "ci",
        "url": f"{base}/hook",
        "events": ALL_EVENTS,
        "secret_env": "RB_HOOK_SECRET",
    }
    values.update(changes)
    return values


def expected_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wall_clock() -> datetime:
    """Now, to the second: the reference library checks ``webhook-timestamp`` against it."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def receiver_time(monkeypatch: pytest.MonkeyPatch):
    """Sets the time the reference library believes it is (to check a delivery as if it
    arrived then, e.g. a replay minutes later); unset, it is the wall clock."""
    shift = [timedelta(0)]

    class Shifted(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + shift[0]

    monkeypatch.setattr(reference, "datetime", Shifted)

    def at(when: datetime) -> None:
        shift[0] = when - datetime.now(UTC)

    return at


# -- tests -----------------------------------------------------------------------------------


async def test_a_release_reaches_the_receiver_as_signed_events(make_world, receiver) -> None:
    rec, url = receiver
    world = make_world(
        hook(url),
        hook(
            url, name="chat", url=f"{url}/chat", events=["succeeded"], secret_env="RB_CHAT_SECRET"
        ),
    )
    release = await world.deploy()
    assert release.state is State.SUCCEEDED

    queued = await world.outbox.items()
    assert [(i.webhook, i.event) for i in queued] == [
        ("ci", "requested"),
        ("ci", "approved"),
        ("ci", "step"),
        ("ci", "succeeded"),
        ("chat", "succeeded"),
    ]
    assert rec.got == []  # the engine only queued them

    deliveries = await world.sender.deliver_due(world.clock.now())

    assert sorted(d.outcome for d in deliveries) == ["delivered"] * 5
    assert len(rec.got) == 5
    by_key = {r.headers["idempotency-key"]: r for r in rec.got}
    assert set(by_key) == {str(i.id) for i in queued}
    for item in queued:
        got = by_key[str(item.id)]
        secret = OTHER_SECRET if item.webhook == "chat" else SECRET
        assert got.path == ("/chat" if item.webhook == "chat" else "/hook")
        assert hmac.compare_digest(
            got.headers["x-releasebot-signature"], expected_signature(secret, got.body)
        )
        assert got.headers["x-releasebot-event"] == item.event
        assert got.headers["x-releasebot-timestamp"] == str(int(world.clock.now().timestamp()))
        assert got.headers["content-type"] == "application/json"
        assert got.json == item.payload
    step = next(r.json for r in rec.got if r.headers["x-releasebot-event"] == "step")
    assert step["event"] == "step" and step["action"] == "release.step_deployed"
    assert step["release"] == {"id": 1, "key": "R-1", "kind": "deploy", "strategy": "immediate"}
    assert (step["service"], step["environment"], step["script"]) == (
        "tax-api",
        "staging",
        "tax-api-staging",
    )
    assert step["version"] == {"id": release.version_id, "tag": "v1.4.2"}
    assert step["state"] == "verifying" and step["actor"] == "releasebot"
    assert step["at"] == "2026-11-26T12:00:00Z"
    assert step["detail"]["step_percent"] == 100
    requested = next(r.json for r in rec.got if r.headers["x-releasebot-event"] == "requested")
    assert requested["actor"] == "U0CAROL" and requested["state"] == "requested"
    # A signature made with another secret, or over other bytes, does not match.
    first = rec.got[0]
    assert first.headers["x-releasebot-signature"] != expected_signature("wrong", first.body)
    assert first.headers["x-releasebot-signature"] != expected_signature(SECRET, first.body + b" ")
    # The Standard Webhooks headers come too; a plain secret's UTF-8 bytes are their key.
    for got in rec.got:
        assert got.headers["webhook-id"] == got.headers["idempotency-key"]
        assert got.headers["webhook-timestamp"] == got.headers["x-releasebot-timestamp"]
        secret = OTHER_SECRET if got.path == "/chat" else SECRET
        signature = Webhook(secret.encode()).sign(
            got.headers["webhook-id"],
            datetime.fromtimestamp(int(got.headers["webhook-timestamp"]), UTC),
            got.body,
        )
        assert got.headers["webhook-signature"] == signature

    assert await world.sender.deliver_due(world.clock.now() + timedelta(hours=1)) == []
    done = await world.outbox.items()
    assert {(i.status, i.attempts, i.last_status) for i in done} == {("delivered", 1, 200)}
    assert all(i.next_attempt_at is None for i in done)


async def test_a_failing_receiver_gets_the_event_later_exactly_once(make_world, receiver) -> None:
    rec, url = receiver
    world = make_world(hook(url, events=["succeeded"]))
    rec.plan = [Answer(500), Answer(500)]
    await world.deploy()
    t0 = world.clock.now()

    first = await world.sender.deliver_due(t0)
    assert [(d.outcome, d.attempt, d.status) for d in first] == [("retry", 1, 500)]
    assert first[0].error == "HTTP 500 Internal Server Error"
    assert first[0].next_attempt_at is not None
    assert timedelta(seconds=2.5) <= first[0].next_attempt_at - t0 <= timedelta(seconds=6)
    assert await world.sender.deliver_due(t0) == []  # not due again yet

    second = await world.sender.deliver_due(t0 + timedelta(minutes=10))
    assert [(d.outcome, d.attempt) for d in second] == [("retry", 2)]
    third = await world.sender.deliver_due(t0 + timedelta(minutes=20))
    assert [(d.outcome, d.attempt, d.status) for d in third] == [("delivered", 3, 200)]
    assert await world.sender.deliver_due(t0 + timedelta(hours=5)) == []

    assert len(rec.got) == 3  # two refused, one accepted: delivered exactly once
    assert len({r.headers["idempotency-key"] for r in rec.got}) == 1
    assert len({r.body for r in rec.got}) == 1
    [row] = await world.rows()
    assert row["attempts"] == 3
    assert row["delivered_at"] is not None and row["failed_at"] is None
    assert row["next_attempt_at"] is None and row["last_error"] is None
    assert row["claimed_by"] is None


async def test_a_slow_receiver_never_blocks_the_engine_and_is_retried(make_world, receiver) -> None:
    rec, url = receiver
    world = make_world(hook(url, events=["requested"], timeout="1s"))
    rec.plan = [Answer(200, delay=3.0)]
    await world.service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    now = world.clock.now()

    started = time.monotonic()
    delivering = asyncio.create_task(world.sender.deliver_due(now))
    while not rec.got:  # the receiver has the request and sits on it
        await asyncio.sleep(0.01)
        assert time.monotonic() - started < 5
    # Meanwhile, a whole release runs and its events are queued without waiting.
    engine_started = time.monotonic()
    release = await world.deploy("v1.4.3")
    assert release.state is State.SUCCEEDED
    assert time.monotonic() - engine_started < 0.9
    assert not delivering.done()

    [attempt] = await delivering
    assert time.monotonic() - started < 2.5  # bounded by the webhook's timeout, not the 3 s
    assert (attempt.outcome, attempt.attempt, attempt.status) == ("retry", 1, None)
    assert attempt.error == "no answer within 1s"

    later = await world.sender.deliver_due(now + timedelta(minutes=5))
    assert [(d.outcome, d.attempt) for d in later] == [("delivered", 2), ("delivered", 1)]
    assert sorted(r.json["release"]["key"] for r in rec.got) == ["R-1", "R-1", "R-2"]


async def test_an_automatic_rollback_pages_pagerduty(make_world, receiver) -> None:
    rec, url = receiver
    pagerduty = {
        "name": "pagerduty",
        "url": f"{url}/pagerduty",
        "events": ["rolled_back"],
        "secret_env": "RB_HOOK_SECRET",
        "format": "pagerduty",
        "routing_key_env": "RB_PD_ROUTING_KEY",
    }
    world = make_world(pagerduty, hook(url, events=["rolled_back", "succeeded"]))
    # The smoke test passes; the health check once it has traffic fails: automatic rollback.
    world.edge.probe_ok = [True, False]
    release = await world.deploy()
    assert release.state is State.ROLLED_BACK

    rows = await world.rows()
    assert [(r["webhook"], r["event"]) for r in rows] == [
        ("pagerduty", "rolled_back"),
        ("ci", "rolled_back"),
    ]
    assert ROUTING_KEY not in json.dumps([r["payload"] for r in rows])  # never stored

    await world.sender.deliver_due(world.clock.now())
    [page] = [r for r in rec.got if r.path == "/pagerduty"]
    event = page.json
    assert list(event) == ["routing_key", "event_action", "dedup_key", "payload"]
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "R-1-rollback"
    payload = event["payload"]
    assert set(payload) == {
        "summary",
        "source",
        "severity",
        "timestamp",
        "component",
        "group",
        "custom_details",
    }
    assert payload["summary"].startswith("R-1 tax-api v1.4.2 rolled back in staging: ")
    assert "health probe failed" in payload["summary"]
    assert payload["severity"] == "critical"
    assert (payload["source"], payload["component"], payload["group"]) == (
        "tax-api-staging",
        "tax-api",
        "staging",
    )
    details = payload["custom_details"]
    assert details["release"] == "R-1"
    assert details["version_id"] == release.version_id
    assert details["rolled_back_to"] == release.stable_version_id
    assert page.headers["x-releasebot-signature"] == expected_signature(SECRET, page.body)
    assert page.headers["x-releasebot-event"] == "rolled_back"


async def test_a_person_rolling_back_does_not_page(make_world) -> None:
    world = make_world(
        {
            "name": "pagerduty",
            "url": "https://events.pagerduty.com/v2/enqueue",
            "events": ["rolled_back"],
            "secret_env": "RB_HOOK_SECRET",
            "format": "pagerduty",
            "routing_key_env": "RB_PD_ROUTING_KEY",
        }
    )
    release = Release(
        service="tax-api",
        environment="staging",
        script="tax-api-staging",
        version_id="v-new",
        requested_by="U0CAROL",
        policy="staging",
        state=State.ROLLED_BACK,
        id=9,
    )
    entry = AuditEntry(
        actor="U0ALICE", action="release.rolled_back", at=world.clock.now(), release_id=9
    )
    await world.outbox.recorded(release, [entry])
    assert await world.rows() == []


async def test_retry_after_is_honoured_and_the_sender_gives_up(
    make_world, receiver, caplog: pytest.LogCaptureFixture
) -> None:
    rec, url = receiver
    world = make_world(hook(url, events=["succeeded"], max_attempts=2))
    rec.plan = [Answer(503, headers={"Retry-After": "120"}), Answer(500)]
    await world.deploy()
    t0 = world.clock.now()

    [first] = await world.sender.deliver_due(t0)
    assert first.outcome == "retry" and first.error == "HTTP 503 Service Unavailable"
    assert first.next_attempt_at is not None
    assert first.next_attempt_at - t0 >= timedelta(seconds=120)
    assert await world.sender.deliver_due(t0 + timedelta(seconds=60)) == []

    with caplog.at_level(logging.ERROR, logger="releasebot.webhooks"):
        [last] = await world.sender.deliver_due(t0 + timedelta(seconds=125))
    assert (last.outcome, last.attempt, last.status) == ("failed", 2, 500)
    assert any("gave up" in r.getMessage() for r in caplog.records)
    assert await world.sender.deliver_due(t0 + timedelta(days=1)) == []

    [item] = await world.outbox.items()
    assert item.status == "failed" and item.attempts == 2
    assert item.last_error == "HTTP 500 Internal Server Error" and item.next_attempt_at is None
    assert len(rec.got) == 2


async def test_an_unreachable_receiver_is_retried_without_leaking_the_url(make_world) -> None:
    url = f"http://127.0.0.1:{free_port()}/token-in-path-0123456789"
    world = make_world(hook("", url=url, events=["succeeded"]))
    await world.deploy()
    [attempt] = await world.sender.deliver_due(world.clock.now())
    assert attempt.outcome == "retry" and attempt.status is None
    assert attempt.error and "token-in-path" not in attempt.error
    [item] = await world.outbox.items()
    assert item.status == "pending" and item.last_error == attempt.error


async def test_replicas_never_claim_the_same_event(make_world) -> None:
    world_a = make_world(hook("http://127.0.0.1:9", events=ALL_EVENTS), owner="replica-a")
    world_b = make_world(hook("http://127.0.0.1:9", events=ALL_EVENTS), owner="replica-b")
    world_a.sender.batch = world_b.sender.batch = 3
    release = Release(
        service="tax-api",
        environment="staging",
        script="tax-api-staging",
        version_id="v-new",
        requested_by="U0CAROL",
        policy="staging",
        id=1,
    )
    now = world_a.clock.now()
    entries = [
        AuditEntry(actor="U0CAROL", action="release.requested", at=now, release_id=1)
        for _ in range(10)
    ]
    await world_a.outbox.recorded(release, entries)

    claims = await asyncio.gather(
        *(w.sender.claim_due(now) for w in (world_a, world_b, world_a, world_b))
    )
    ids = [item.id for claim in claims for item in claim]
    assert len(ids) == len(set(ids)) == 10
    assert all(item.attempts == 1 for claim in claims for item in claim)
    assert await world_a.sender.claim_due(now) == []

    # A replica that died mid-send: its lease runs out and another takes the row over.
    later = now + world_a.sender.lease + timedelta(seconds=1)
    again = await world_b.sender.claim_due(later)
    assert len(again) == 3 and all(item.attempts == 2 for item in again)


# -- Standard Webhooks, checked with the specification's reference library -------------------


async def test_a_delivery_verifies_with_the_standard_webhooks_library(make_world, receiver) -> None:
    rec, url = receiver
    world = make_world(hook(url, secret_env="RB_STD_SECRET"), start=wall_clock())
    await world.deploy()
    queued = await world.outbox.items()
    assert [i.event for i in queued] == ["requested", "approved", "step", "succeeded"]

    await world.sender.deliver_due(world.clock.now())

    assert len(rec.got) == 4
    by_id = {r.headers["webhook-id"]: r for r in rec.got}
    assert set(by_id) == {str(i.id) for i in queued}  # the outbox row's idempotency key
    library = Webhook(WHSEC)
    for item in queued:
        got = by_id[str(item.id)]
        assert got.headers["webhook-timestamp"] == str(int(world.clock.now().timestamp()))
        assert got.headers["webhook-signature"].startswith("v1,")
        assert " " not in got.headers["webhook-signature"]  # one secret, one signature
        assert library.verify(got.body, got.headers) == item.payload
        # the deprecated headers, for one release: the same id, the body-only signature keyed
        # by the secret as written
        assert got.headers["idempotency-key"] == got.headers["webhook-id"]
        assert got.headers["x-releasebot-event"] == item.event
        assert got.headers["x-releasebot-timestamp"] == got.headers["webhook-timestamp"]
        assert got.headers["x-releasebot-signature"] == expected_signature(WHSEC, got.body)

    got = rec.got[0]
    # The key is the secret's decoded bytes: the whsec_ text itself as the key does not verify.
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(WHSEC.encode()).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(WHSEC_OLD).verify(got.body, got.headers)


async def test_a_changed_id_or_body_breaks_the_signature(make_world, receiver) -> None:
    rec, url = receiver
    world = make_world(
        hook(url, events=["succeeded"], secret_env="RB_STD_SECRET"), start=wall_clock()
    )
    await world.deploy()
    await world.sender.deliver_due(world.clock.now())
    [got] = rec.got
    library = Webhook(WHSEC)
    assert library.verify(got.body, got.headers)["event"] == "succeeded"

    # Another webhook-id (to slip past the receiver's de-duplication) is not signed.
    other_id = {**got.headers, "webhook-id": str(int(got.headers["webhook-id"]) + 1)}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        library.verify(got.body, other_id)
    # Nor is one changed byte of the body.
    changed = got.body.replace(b'"succeeded"', b'"failed"', 1)
    assert changed != got.body
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        library.verify(changed, got.headers)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        library.verify(got.body + b" ", got.headers)
    # The id and the timestamp are needed: without them there is nothing to check.
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        missing = {k: v for k, v in got.headers.items() if k != name}
        with pytest.raises(WebhookVerificationError, match="Missing required headers"):
            library.verify(got.body, missing)


async def test_a_replayed_delivery_is_rejected_by_the_library(
    make_world, receiver, receiver_time
) -> None:
    rec, url = receiver
    sent_at = wall_clock()
    world = make_world(hook(url, events=["succeeded"], secret_env="RB_STD_SECRET"), start=sent_at)
    await world.deploy()
    await world.sender.deliver_due(world.clock.now())
    [got] = rec.got
    library = Webhook(WHSEC)

    receiver_time(sent_at + timedelta(minutes=4, seconds=59))  # late but within tolerance
    assert library.verify(got.body, got.headers)["event"] == "succeeded"

    # The same request captured and sent again six minutes later: too old.
    receiver_time(sent_at + timedelta(minutes=6))
    with pytest.raises(WebhookVerificationError, match="too old"):
        library.verify(got.body, got.headers)
    # Bringing its timestamp up to date breaks the signature: the timestamp is signed.
    fresh = {**got.headers, "webhook-timestamp": str(int(sent_at.timestamp()) + 360)}
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        library.verify(got.body, fresh)


async def test_retries_keep_the_webhook_id_and_sign_each_attempt_anew(
    make_world, receiver, receiver_time
) -> None:
    rec, url = receiver
    world = make_world(hook(url, events=["succeeded"], secret_env="RB_STD_SECRET"))
    rec.plan = [Answer(500), Answer(503)]
    await world.deploy()
    t0 = world.clock.now()
    attempts = [t0, t0 + timedelta(minutes=10), t0 + timedelta(minutes=20)]
    outcomes = []
    for at in attempts:
        outcomes += [(d.outcome, d.attempt) for d in await world.sender.deliver_due(at)]
    assert outcomes == [("retry", 1), ("retry", 2), ("delivered", 3)]

    [item] = await world.outbox.items()
    assert len(rec.got) == 3
    assert {r.headers["webhook-id"] for r in rec.got} == {str(item.id)}
    assert [r.headers["webhook-timestamp"] for r in rec.got] == [
        str(int(at.timestamp())) for at in attempts
    ]
    assert len({r.headers["webhook-signature"] for r in rec.got}) == 3
    assert len({r.body for r in rec.got}) == 1
    library = Webhook(WHSEC)
    for got, at in zip(rec.got, attempts, strict=True):
        receiver_time(at + timedelta(seconds=1))  # each attempt checked when it arrived
        assert library.verify(got.body, got.headers) == item.payload
    # An earlier attempt is a replay by the time the last one arrives.
    receiver_time(attempts[-1])
    with pytest.raises(WebhookVerificationError, match="too old"):
        library.verify(rec.got[0].body, rec.got[0].headers)


async def test_during_a_rotation_both_secrets_verify(make_world, receiver) -> None:
    rec, url = receiver
    world = make_world(
        hook(url, events=["succeeded"], secret_env="RB_ROTATING_SECRET"), start=wall_clock()
    )
    await world.deploy()
    await world.sender.deliver_due(world.clock.now())
    [got] = rec.got

    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert Webhook(WHSEC).verify(got.body, got.headers)["event"] == "succeeded"
    assert Webhook(WHSEC_OLD).verify(got.body, got.headers)["event"] == "succeeded"
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(bytes(32)).decode()).verify(got.body, got.headers)
    # The deprecated header has room for one signature: the last (oldest) secret's.
    assert got.headers["x-releasebot-signature"] == expected_signature(WHSEC_OLD, got.body)
