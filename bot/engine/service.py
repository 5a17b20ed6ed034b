"""The release use cases in one object: requests, approvals, rails, driving, reading.

::

    service = ReleaseService(config, repo, edge, notifier, clock, votes=..., timers=...,
                             rails=..., directory=...)
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    await service.kick(release.id)
"""

from __future__ import annotations

from bot.engine.approvals import Approvals
from bot.engine.controls import Controls
from bot.engine.digest import Digests
from bot.engine.driving import rollback_intent
from bot.engine.model import Release
from bot.engine.rails import Rails
from bot.engine.reading import Health, LiveSplit, TargetStatus
from bot.engine.requests import DeployRequest, Plan


class ReleaseService(Digests, Approvals, Rails, Controls):
    async def resume_unfinished(self) -> list[Release]:
        """After a restart: make sure every release in flight has a timer to drive it; the
        scheduler picks them up (here or on another replica). Returns those rescheduled."""
        rescheduled = []
        for release in await self.repo.unfinished():
            if not release.state.is_active or release.id is None:
                continue
            # A paused release waits for a person, unless a rollback was already decided.
            if release.paused and rollback_intent(release) is None:
                continue
            if not await self.timers.pending(release.id):
                await self.timers.schedule("advance", self.clock.now(), release.id)
                rescheduled.append(release)
        return rescheduled


__all__ = ["DeployRequest", "Health", "LiveSplit", "Plan", "ReleaseService", "TargetStatus"]
