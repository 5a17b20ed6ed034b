"""A drive that takes longer than half its timer's lease keeps the lease (renewed while it
runs) and finishes; the timer records are never assigned to (they are immutable)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from bot.config import parse_config
from bot.engine.clock import SystemClock
from bot.engine.model import ADVANCE, Deployment, VersionShare
from bot.engine.ports import EdgeCall
from bot.engine.service import DeployRequest, ReleaseService
from bot.engine.states import State
from tests.fakes import (
    FakeDirectory,
    FakeEdge,
    FakeRails,
    FakeReleaseRepository,
    FakeTimers,
    FakeVotes,
    RecordingNotifier,
)
from tests.unit.test_service_deploy import CONFIG

LEASE = timedelta(seconds=0.3)


class SlowEdge(FakeEdge):
    """Cloudflare taking a while to answer a deployment (longer than the lease)."""

    async def deploy(
        self,
        script: str,
        split: Sequence[VersionShare],
        message: str,
        force: bool = False,
        call: EdgeCall | None = None,
    ) -> Deployment:
        await asyncio.sleep(LEASE.total_seconds() * 2)
        return await super().deploy(script, split, message, force, call)


async def test_a_drive_longer_than_half_the_lease_renews_it_and_finishes() -> None:
    edge = SlowEdge()
    old = edge.add_version("tax-api-staging", "v1.4.1")
    edge.add_version("tax-api-staging", "v1.4.2")
    edge.put_live("tax-api-staging", VersionShare(old, 100))
    repo = FakeReleaseRepository()
    timers = FakeTimers()
    clock = SystemClock()
    service = ReleaseService(
        parse_config(CONFIG),
        repo,
        edge,
        RecordingNotifier(),
        clock,
        votes=FakeVotes(repo),
        timers=timers,
        rails=FakeRails(repo),
        directory=FakeDirectory({}),
        owner="replica-a",
        lease=LEASE,
    )
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    tid = await timers.schedule(ADVANCE, clock.now(), release.id)
    [claimed] = await service.timers.claim_due(clock.now(), "replica-a", LEASE)
    first_until = claimed.claimed_until

    await service.run_timer(claimed)

    final = await repo.get(release.id)
    assert final is not None and final.state is State.SUCCEEDED
    done = timers.rows[tid]
    assert done.fired_at is not None  # completed by the process that held it
    assert done.claimed_by == "replica-a"
    assert done.claimed_until is not None and first_until is not None
    assert done.claimed_until > first_until  # renewed while the drive ran
