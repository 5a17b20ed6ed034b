"""The audit channel: each record links to its release card, and a Slack outage delays records,
never loses them — the outbox in the database holds them until Slack takes them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.dev.slack_standin import StandinState
from bot.engine.model import AuditEntry, Release
from bot.engine.states import State
from bot.slack.audit_poster import CARD_GRACE, CARD_POLL, AuditPoster, backoff
from storage.outbox import OutboxWriter, SqlOutbox
from storage.repositories import SqlReleaseRepository
from tests.fakes import FakeClock
from tests.fixtures.bot import AUDIT, BOT_TOKEN, RELEASES
from tests.fixtures.servers import ServerThread

pytest_plugins = ["tests.fixtures.db"]


def _client(server: ServerThread) -> AsyncWebClient:
    # No retry handlers: each post is one attempt, so the test decides what fails.
    return AsyncWebClient(token=BOT_TOKEN, base_url=f"{server.url}/api/", timeout=5)


@pytest.fixture
def world(engine: AsyncEngine, slack_standin: tuple[ServerThread, StandinState]) -> dict[str, Any]:
    server, state = slack_standin
    clock = FakeClock()
    # Records and their outbox rows are written together, as every change writes them.
    repo = SqlReleaseRepository(engine, OutboxWriter(AUDIT, clock=clock.now))
    outbox = SqlOutbox(engine)

    def poster() -> AuditPoster:
        return AuditPoster(_client(server), AUDIT, outbox, repo, clock)

    return {
        "server": server,
        "slack": state,
        "clock": clock,
        "repo": repo,
        "outbox": outbox,
        "poster": poster,
    }


async def _release_with_card(world: dict[str, Any], make_release: Callable[..., Release]) -> Any:
    release = await world["repo"].create(make_release(), [])
    card = await _client(world["server"]).chat_postMessage(
        channel=RELEASES, text=f"{release.key} tax-api v1.4.2 → production"
    )
    await world["repo"].set_card(release.id, RELEASES, card["ts"])
    return release, card["ts"]


def _entry(release: Any, action: str, clock: FakeClock) -> AuditEntry:
    return AuditEntry(
        actor="releasebot",
        action=action,
        at=clock.now(),
        release_id=release.id,
        release_key=release.key,
        service="tax-api",
        environment="production",
        before="approved",
        after="deploying",
    )


async def _post(world: dict[str, Any], poster: AuditPoster, entries: list[AuditEntry]) -> None:
    """A change stores its records (and with them the outbox rows); then the poster sends."""
    await world["repo"].append_audit(entries)
    await poster.post(entries)


def _audit_texts(state: StandinState) -> list[str]:
    return [m.text for m in state.channel_messages(AUDIT)]


async def test_records_link_to_their_release_card(world, make_release) -> None:
    release, ts = await _release_with_card(world, make_release)
    poster = world["poster"]()

    await _post(world, poster, [_entry(release, "release.started", world["clock"])])
    await _post(world, poster, [_entry(release, "release.step_deployed", world["clock"])])
    lock = AuditEntry("U0ALICE", "lock.set", world["clock"].now(), service="tax-api")
    await _post(world, poster, [lock])

    texts = _audit_texts(world["slack"])
    link = f"<https://battleborn.example/archives/{RELEASES}/p{ts.replace('.', '')}|card>"
    # each post names its record's place in the chain, so a gap is visible to a reader
    assert texts[0] == (
        f"#1 · `{release.key}` tax-api/production · release.started (approved → deploying) "
        f"· by releasebot · {link}"
    )
    assert texts[1].endswith(link) and "release.step_deployed" in texts[1]
    assert texts[2] == "#3 · tax-api · lock.set · by <@U0ALICE>"
    # One permalink lookup per release, however many of its records are posted.
    assert len(world["slack"].calls_to("chat.getPermalink")) == 1
    assert await world["outbox"].count_unsent() == 0


async def test_a_slack_outage_delays_records_and_never_loses_them(world, make_release) -> None:
    release, _ = await _release_with_card(world, make_release)
    slack, clock, outbox = world["slack"], world["clock"], world["outbox"]
    slack.inject("chat.postMessage", 503, count=2)
    slack.inject("chat.getPermalink", 503, count=1)
    poster = world["poster"]()

    await _post(world, poster, [_entry(release, "release.started", clock)])  # fails (503)

    assert _audit_texts(slack) == []
    [waiting] = await outbox.unsent()
    assert waiting.attempts == 1 and waiting.last_error
    assert await poster.retry_due() == 0  # not due yet: it backs off
    clock.advance(backoff(1).total_seconds())
    assert await poster.retry_due() == 0  # the second attempt fails too
    [waiting] = await outbox.unsent()
    assert waiting.attempts == 2 and waiting.next_attempt_at == clock.now() + backoff(2)

    # The bot restarts while Slack is still away: the database remembers what is owed.
    clock.advance(backoff(2).total_seconds())
    after_restart = world["poster"]()
    assert await after_restart.retry_due() == 1

    texts = _audit_texts(slack)
    assert len(texts) == 1 and "release.started" in texts[0] and "|card>" in texts[0]
    assert await outbox.unsent() == []
    clock.advance(3600)
    assert await after_restart.retry_due() == 0
    assert len(_audit_texts(slack)) == 1


async def test_racing_retry_jobs_post_a_record_once(world, make_release) -> None:
    release, _ = await _release_with_card(world, make_release)
    slack, clock = world["slack"], world["clock"]
    slack.inject("chat.postMessage", 500, count=1)
    first = world["poster"]()
    await _post(world, first, [_entry(release, "release.started", clock)])
    assert _audit_texts(slack) == []
    clock.advance(60)

    replicas = [world["poster"]() for _ in range(4)]
    sent = await asyncio.gather(*(r.retry_due() for r in replicas))

    assert sum(sent) == 1
    assert len(_audit_texts(slack)) == 1


async def test_a_claimed_row_comes_back_when_its_holder_dies(world, make_release) -> None:
    outbox, clock = world["outbox"], world["clock"]
    hold = timedelta(seconds=30)
    held = await outbox.add("audit", AUDIT, {"items": [{"line": "x"}]}, clock.now(), hold)
    assert await outbox.claim_due(clock.now(), timedelta(seconds=30)) == []
    clock.advance(31)
    [again] = await outbox.claim_due(clock.now(), timedelta(seconds=30))
    assert again.id == held.id and again.attempts == 2


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(30) == timedelta(minutes=10)


async def test_sent_messages_are_pruned_after_a_week(world, make_release) -> None:
    release, _ = await _release_with_card(world, make_release)
    poster, outbox, clock = world["poster"](), world["outbox"], world["clock"]
    await _post(world, poster, [_entry(release, "release.started", clock)])
    assert await outbox.prune(clock.now() + timedelta(seconds=1)) == 1  # sent rows only
    await _post(world, poster, [_entry(release, "release.succeeded", clock)])
    world["slack"].inject("chat.postMessage", 500, count=1)
    await _post(world, poster, [_entry(release, "release.failed", clock)])  # owed, so kept
    clock.advance(8 * 24 * 3600)
    world["slack"].inject("chat.postMessage", 500, count=1)
    await poster.retry_due()  # fails again, prunes the old sent one
    [owed] = await outbox.unsent()
    # the outbox holds plain data; it is rendered when it is sent
    assert owed.payload["items"][0]["action"] == "release.failed"
    assert owed.payload["items"][0]["seq"] == 3
    assert await outbox.prune(clock.now()) == 0


async def test_a_record_waits_a_little_for_its_card(world, make_release) -> None:
    slack, clock, repo, outbox = world["slack"], world["clock"], world["repo"], world["outbox"]
    poster = world["poster"]()
    early = await repo.create(make_release(), [])  # its card is not posted yet
    await _post(world, poster, [_entry(early, "release.requested", clock)])
    assert _audit_texts(slack) == [] and await outbox.count_unsent() == 1
    clock.advance(CARD_POLL.total_seconds())
    assert await poster.retry_due() == 0  # still no card
    card = await _client(world["server"]).chat_postMessage(channel=RELEASES, text="R-1 card")
    await repo.set_card(early.id, RELEASES, card["ts"])
    clock.advance(CARD_POLL.total_seconds())
    assert await poster.retry_due() == 1
    assert _audit_texts(slack)[0].endswith("|card>")
    [sent] = await outbox_rows(outbox)
    assert sent.attempts == 1  # waiting for the card is no failed attempt

    never = await repo.create(make_release(environment="staging"), [])
    await _post(world, poster, [_entry(never, "release.requested", clock)])
    clock.advance(CARD_GRACE.total_seconds())
    assert await poster.retry_due() == 1  # after the grace, without the link
    assert not _audit_texts(slack)[-1].endswith("|card>")


async def outbox_rows(outbox: SqlOutbox) -> list[Any]:
    import sqlalchemy as sa

    from storage.db import reading
    from storage.outbox import _message
    from storage.tables import slack_outbox

    async with reading(outbox._engine) as conn:
        result = await conn.execute(sa.select(slack_outbox).order_by(slack_outbox.c.id))
        return [_message(r) for r in result.mappings()]


async def test_a_record_held_back_by_a_failure_keeps_its_place(world, make_release) -> None:
    """A later record never overtakes an earlier one that Slack refused: the audit channel
    reads in ``seq`` order, with no gap filled in later."""
    release, _ = await _release_with_card(world, make_release)
    slack, clock, outbox = world["slack"], world["clock"], world["outbox"]
    slack.inject("chat.postMessage", 503, count=1)
    poster = world["poster"]()
    await _post(world, poster, [_entry(release, "release.started", clock)])  # refused
    await _post(world, poster, [_entry(release, "release.step_deployed", clock)])

    assert _audit_texts(slack) == []  # the second waits for the first
    assert len(await outbox.unsent()) == 2
    clock.advance(backoff(1).total_seconds())
    assert await poster.retry_due() == 2
    texts = _audit_texts(slack)
    assert [t.split(" · ")[0] for t in texts] == ["#1", "#2"]
    assert "release.started" in texts[0] and "release.step_deployed" in texts[1]


async def test_a_database_error_inside_the_change_stores_neither_the_change_nor_its_post(
    engine: AsyncEngine, world, make_release
) -> None:
    """The outbox rows are written in the change's transaction: when the database fails at
    that point, the change is not stored either, so no post is owed for something that did
    not happen — and the change made again is posted once."""
    clock = world["clock"]

    def failing_rows(_release: Release, _entries: list[AuditEntry]) -> list[dict[str, Any]]:
        raise sa.exc.OperationalError("INSERT INTO webhook_outbox", {}, Exception("disk I/O"))

    failing = SqlReleaseRepository(engine, OutboxWriter(AUDIT, failing_rows, clock=clock.now))
    release, _ = await _release_with_card(world, make_release)
    before = await world["repo"].get(release.id)
    started = before.copy(state=State.DEPLOYING)
    with pytest.raises(sa.exc.OperationalError):
        await failing.save(started, [_entry(release, "release.started", clock)])

    assert (await world["repo"].get(release.id)).state is before.state
    assert await world["repo"].audit_for(release.id) == []
    assert await world["outbox"].unsent() == []

    poster = world["poster"]()
    saved = await world["repo"].save(started, [_entry(release, "release.started", clock)])
    await poster.post([_entry(saved, "release.started", clock)])
    texts = _audit_texts(world["slack"])
    assert len(texts) == 1 and texts[0].startswith("#1 · ") and "release.started" in texts[0]
    assert await world["outbox"].unsent() == []


async def test_the_channel_shows_every_seq_in_order_the_keyed_marker_included(
    world, make_release, engine
) -> None:
    """Records from a plain writer, then a keyed one: the ``audit.keyed`` record that starts
    the keyed part is posted in its place too, so the channel reads #1, #2, #3, … with no gap."""
    from storage.audit_keys import AuditKey

    release, _ = await _release_with_card(world, make_release)
    slack, clock = world["slack"], world["clock"]
    poster = world["poster"]()
    await _post(world, poster, [_entry(release, "release.started", clock)])
    await _post(world, poster, [_entry(release, "release.step_deployed", clock)])
    key = AuditKey(b"channel-order-key-1a2b3c4d5e")
    keyed = SqlReleaseRepository(engine, OutboxWriter(AUDIT, clock=clock.now), key)
    later = [_entry(release, "release.succeeded", clock)]
    await keyed.append_audit(later)
    await poster.post(later)

    # The keyed change's two records go out in one message, a line each, in seq order.
    lines = [line for text in _audit_texts(slack) for line in text.splitlines()]
    assert [line.split(" · ")[0] for line in lines] == ["#1", "#2", "#3", "#4"]
    assert "audit.keyed" in lines[2] and "by releasebot" in lines[2]
    assert "release.succeeded" in lines[3]
