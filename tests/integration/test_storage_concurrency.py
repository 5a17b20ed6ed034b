"""What holds when several coroutines, or several engines (standing in for replicas), hit the
same database at once: votes count once, a timer goes to one claimer, the audit chain stays
one chain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.engine.model import AuditEntry, Release, Vote
from storage.audit import verify_chain
from storage.db import create_engine
from storage.repositories import (
    SqlReleaseRepository,
    SqlTimerRepository,
    SqlVoteRepository,
)

pytest_plugins = ["tests.fixtures.db"]

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture
async def engines(db_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Two engines on one database, like two replicas of the bot."""
    pair = [create_engine(db_url), create_engine(db_url)]
    try:
        yield pair
    finally:
        for engine in pair:
            await engine.dispose()


async def test_votes_count_once_under_repeated_concurrent_delivery(
    engines: list[AsyncEngine], make_release: Callable[..., Release]
):
    release = await SqlReleaseRepository(engines[0]).create(make_release(), [])
    assert release.id is not None
    voters = [SqlVoteRepository(e) for e in engines]

    def vote(user: str) -> Vote:
        return Vote(release.id or 0, release.version_id, user, True, NOW)

    def audit(user: str) -> list[AuditEntry]:
        return [AuditEntry(user, "release.vote", NOW, release_id=release.id)]

    # 50 deliveries: each user's click arrives 25 times, through both engines.
    users = [f"U{i % 2 + 1}" for i in range(50)]
    results = await asyncio.gather(
        *(voters[i // 2 % 2].add_vote(vote(u), audit(u)) for i, u in enumerate(users))
    )
    assert sum(results) == 2
    stored = await voters[0].votes(release.id)
    assert sorted(v.user_id for v in stored) == ["U1", "U2"]
    assert stored[0].at == NOW and stored[0].approve is True
    # The audit records of the repeats were not written either.
    report = await verify_chain(engines[0])
    assert report.ok and report.checked == 2


async def test_a_timer_is_claimed_by_one_claimer_only(engines: list[AsyncEngine]):
    schedulers = [SqlTimerRepository(e) for e in engines]
    ids = [await schedulers[0].schedule("bake_done", NOW - timedelta(seconds=i)) for i in range(40)]
    future = await schedulers[0].schedule("bake_done", NOW + timedelta(minutes=5))

    rounds = await asyncio.gather(
        *(
            schedulers[i % 2].claim_due(NOW, owner=f"replica-{i % 2}", lease=LEASE, limit=7)
            for i in range(12)
        )
    )
    claimed = [t.id for batch in rounds for t in batch]
    assert len(claimed) == len(set(claimed)) == 40
    assert sorted(claimed) == sorted(ids) and future not in claimed
    assert all(t.claimed_until == NOW + LEASE for batch in rounds for t in batch)


async def test_timers_lease_expiry_completion_and_cancellation(
    timer_repo: SqlTimerRepository, repo: SqlReleaseRepository, make_release
):
    release = await repo.create(make_release(), [])
    first = await timer_repo.schedule("bake_done", NOW, release.id, {"step": 0})
    expiry = await timer_repo.schedule("approval_expired", NOW, release.id)
    other = await timer_repo.schedule("health_digest", NOW)

    claimed = await timer_repo.claim_due(NOW, "a", LEASE)
    assert [(t.id, t.payload) for t in claimed] == [(first, {"step": 0}), (expiry, {}), (other, {})]
    assert await timer_repo.claim_due(NOW + LEASE, "b", LEASE) == []  # lease still held
    # "a" died: once the lease has run out, "b" gets the work.
    later = NOW + LEASE + timedelta(seconds=1)
    retaken = await timer_repo.claim_due(later, "b", LEASE)
    assert {t.id for t in retaken} == {first, expiry, other}
    assert all(t.claimed_by == "b" for t in retaken)

    await timer_repo.complete(first, at=later)
    assert await timer_repo.cancel_for(release.id or 0, kind="approval_expired") == 1
    assert await timer_repo.cancel_for(release.id or 0) == 0  # the fired one stays, as history
    much_later = later + timedelta(hours=1)
    assert [t.id for t in await timer_repo.claim_due(much_later, "c", LEASE)] == [other]


async def test_concurrent_audit_writers_keep_one_chain(engines: list[AsyncEngine]):
    repos = [SqlReleaseRepository(e) for e in engines]
    await asyncio.gather(
        *(
            repos[i % 2].append_audit(
                [
                    AuditEntry(f"U{i}", "lock.added", NOW, detail={"n": i}),
                    AuditEntry(f"U{i}", "lock.removed", NOW, detail={"n": i}),
                ]
            )
            for i in range(20)
        )
    )
    report = await verify_chain(engines[1])
    assert report.ok, str(report)
    assert report.checked == report.last_seq == 40


async def test_outbox_claims_keep_a_channel_in_order_across_replicas(
    engines: list[AsyncEngine],
):
    """Twelve claims at once from two replicas over one channel's 40 due messages: the first
    claim leases the oldest 7 and every other claim then finds the channel waiting behind
    them, so no replica ever posts a later message while an earlier one is in flight."""
    from storage.outbox import SqlOutbox

    outboxes = [SqlOutbox(e) for e in engines]
    added = [
        await outboxes[0].add("audit", "C0AUDIT", {"n": n}, NOW, timedelta(0)) for n in range(40)
    ]
    rounds = await asyncio.gather(
        *(outboxes[i % 2].claim_due(NOW, LEASE, limit=7) for i in range(12))
    )
    claimed = sorted(m.id for batch in rounds for m in batch)
    assert claimed == sorted(m.id for m in added)[:7]
    assert sum(1 for batch in rounds if batch) == 1
