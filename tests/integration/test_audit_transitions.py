"""Every transition of the state machine, through the engine, on the real SQL repository: each
writes exactly its one audit record (the action named in ``bot.engine.audit.ACTIONS``) in the
same transaction as the change, and nothing that is refused leaves a record behind."""

from __future__ import annotations

from collections import deque
from itertools import pairwise
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import parse_config
from bot.engine import audit
from bot.engine.errors import ConcurrentUpdate, EdgeRejected, IllegalTransition
from bot.engine.model import Release, VersionShare
from bot.engine.service import DeployRequest, ReleaseService
from bot.engine.states import TERMINAL, TRANSITIONS, Event, State
from storage.audit import verify_chain
from storage.db import reading
from storage.rails import SqlRailsRepository
from storage.repositories import SqlReleaseRepository, SqlTimerRepository, SqlVoteRepository
from storage.tables import audit_events
from tests.fakes import FakeClock, FakeDirectory, FakeEdge, RecordingNotifier

pytest_plugins = ["tests.fixtures.db"]

CONFIG = {
    "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
    "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
    "policies": {
        "staging": {"approvals_required": 0},
        "production": {"approvals_required": 2, "approvers": ["U0ALICE", "U0BOB", "U0CAROL"]},
    },
    "services": {
        "tax-api": {
            "environments": {
                "staging": {"script": "tax-api-staging", "policy": "staging"},
                "production": {"script": "tax-api", "policy": "production"},
            }
        }
    },
}


def _service(engine: AsyncEngine, edge: FakeEdge, clock: FakeClock) -> ReleaseService:
    repo = SqlReleaseRepository(engine)
    return ReleaseService(
        parse_config(CONFIG),
        repo,
        edge,
        RecordingNotifier(),
        clock,
        votes=SqlVoteRepository(engine),
        timers=SqlTimerRepository(engine),
        rails=SqlRailsRepository(engine),
        directory=FakeDirectory(),
    )


def _path_to(target: State) -> list[Event]:
    """The shortest list of events that takes a new (requested) release to ``target``."""
    seen = {State.REQUESTED: []}
    queue = deque([State.REQUESTED])
    while queue:
        state = queue.popleft()
        for (source, event), nxt in TRANSITIONS.items():
            if source is state and nxt not in seen:
                seen[nxt] = [*seen[state], event]
                queue.append(nxt)
    return seen[target]


async def _records(engine: AsyncEngine, release_id: int | None = None) -> list[dict[str, Any]]:
    where = sa.true() if release_id is None else audit_events.c.release_id == release_id
    async with reading(engine) as conn:
        result = await conn.execute(
            sa.select(audit_events).where(where).order_by(audit_events.c.seq)
        )
        return [dict(r) for r in result.mappings()]


async def _count(engine: AsyncEngine) -> int:
    async with reading(engine) as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(audit_events)) or 0)


def _draft(number: int, clock: FakeClock) -> Release:
    # One environment per release: a release deploying or verifying holds its target.
    return Release(
        service="tax-api",
        environment=f"lane-{number}",
        script="tax-api",
        version_id="0b1c2d3e-aaaa-4bbb-8ccc-000000000002",
        stable_version_id="0b1c2d3e-aaaa-4bbb-8ccc-000000000001",
        requested_by="U0CAROL",
        policy="production",
        created_at=clock.now(),
        updated_at=clock.now(),
    )


def _assert_story(records: list[dict[str, Any]], final: State) -> None:
    """A release's state records form one unbroken story from 'requested' to ``final``: each
    record is a change (before ≠ after) that starts where the previous one ended."""
    changes = [r for r in records if r["after"] is not None]
    assert changes[0]["action"] == "release.requested" and changes[0]["before"] is None
    for earlier, later in pairwise(changes):
        assert later["before"] == earlier["after"], (earlier, later)
        assert later["before"] != later["after"]
    assert changes[-1]["after"] == final.value


async def test_every_transition_writes_exactly_its_one_record(engine: AsyncEngine) -> None:
    clock = FakeClock()
    service = _service(engine, FakeEdge(), clock)
    walked: set[tuple[State, Event]] = set()

    for number, ((state, event), target) in enumerate(sorted(TRANSITIONS.items()), start=1):
        created = await service.repo.create(
            _draft(number, clock), [audit.created_entry(_draft(number, clock), clock.now())]
        )
        release = created
        for step in [*_path_to(state), event]:
            before_state, before_count = release.state, await _count(engine)
            clock.advance(1)
            release = await service.recorder.transition(release, step, "U0ALICE", reason="test")
            walked.add((before_state, step))

            added = (await _records(engine))[before_count:]
            assert len(added) == 1, f"{before_state} --{step}--> wrote {len(added)} records"
            record = added[0]
            assert record["action"] == audit.ACTIONS[step]
            assert record["before"] == before_state.value
            assert record["after"] == TRANSITIONS[(before_state, step)].value
            assert (record["release_id"], record["release_key"]) == (release.id, release.key)
            assert record["at"] == clock.now() and record["actor"] == "U0ALICE"
            stored = await service.repo.get(release.id)
            assert stored is not None and stored.state is TRANSITIONS[(before_state, step)]
            assert stored.revision == release.revision
        assert release.state is target
        _assert_story(await _records(engine, release.id), target)

    assert walked == set(TRANSITIONS)
    report = await verify_chain(engine)
    assert report.ok, str(report)


async def test_refused_transitions_leave_no_record_and_no_change(engine: AsyncEngine) -> None:
    clock = FakeClock()
    service = _service(engine, FakeEdge(), clock)
    for number, state in enumerate(State, start=1):
        release = await service.repo.create(
            _draft(number, clock), [audit.created_entry(_draft(number, clock), clock.now())]
        )
        for step in _path_to(state):
            release = await service.recorder.transition(release, step, "U0ALICE")
        count = await _count(engine)
        for event in Event:
            if (state, event) in TRANSITIONS:
                continue
            with pytest.raises(IllegalTransition):
                await service.recorder.transition(release, event, "U0ALICE")
            assert await _count(engine) == count, f"{state} --{event}--> left a record"
            stored = await service.repo.get(release.id)
            assert stored is not None
            assert (stored.state, stored.revision) == (release.state, release.revision)
        if state not in TERMINAL:
            # A change based on a stale read is refused whole: no record either.
            stale = release.copy(revision=release.revision - 1)
            allowed = next(e for (s, e) in TRANSITIONS if s is state)
            with pytest.raises(ConcurrentUpdate):
                await service.recorder.transition(stale, allowed, "U0ALICE")
            assert await _count(engine) == count
    assert (await verify_chain(engine)).ok


async def test_use_cases_tell_the_whole_story_and_nothing_else(engine: AsyncEngine) -> None:
    """The same through the use cases people trigger: deploys that succeed or fail, approvals,
    a rejection, an expiry and a cancellation. Every state record is a change, in order."""
    clock = FakeClock()
    edge = FakeEdge()
    for script in ("tax-api-staging", "tax-api"):
        stable = edge.add_version(script, "v1.4.1")
        edge.add_version(script, "v1.4.2")
        edge.put_live(script, VersionShare(stable, 100))
    service = _service(engine, edge, clock)

    ok = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    ok = await service.kick(ok.id)
    assert ok is not None and ok.state is State.SUCCEEDED

    edge.fail_deploys.append(EdgeRejected("Cloudflare said no"))
    failed = await service.request_deploy(DeployRequest("tax-api", "v1.4.1", "U0CAROL"))
    failed = await service.kick(failed.id)
    assert failed is not None and failed.state is State.FAILED

    prod = DeployRequest("tax-api", "v1.4.2", "U0CAROL", environment="production")
    approved = await service.request_deploy(prod)
    # locked: the approved release waits instead of starting, and can still be cancelled
    await service.lock("tax-api", "production", "U0ALICE", "hold")
    await service.decide(approved.id, "U0ALICE", True)
    approved = await service.decide(approved.id, "U0BOB", True)
    assert approved.state is State.APPROVED
    cancelled = await service.cancel(approved.id, "U0CAROL")
    assert cancelled.state is State.CANCELLED
    await service.unlock("tax-api", "production", "U0ALICE")

    rejected = await service.request_deploy(prod)
    rejected = await service.decide(rejected.id, "U0ALICE", False, reason="not today")
    assert rejected.state is State.CANCELLED

    expiring = await service.request_deploy(prod)
    clock.advance(2 * 3600)
    expired = await service.expire(expiring.id)
    assert expired is not None and expired.state is State.EXPIRED

    for release in (ok, failed, cancelled, rejected, expired):
        records = await _records(engine, release.id)
        _assert_story(records, release.state)
        state_records = [r for r in records if r["after"] is not None]
        known = {"release.requested", *audit.ACTIONS.values()}
        assert {r["action"] for r in state_records} <= known
        # Records without a state change are facts about the release, never changes.
        others = {r["action"] for r in records if r["after"] is None}
        assert others <= {"vote.approved", "vote.rejected", "gate.passed", "refused"}
    assert (await verify_chain(engine)).ok
