"""The release use cases in one object: requests, approvals, rails, driving, reading.

::

    service = ReleaseService(config, repo, edge, notifier, clock, votes=..., timers=...,
                             rails=..., directory=...)
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    await service.kick(release.id)
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.engine.approvals import Approvals
from bot.engine.controls import Controls
from bot.engine.model import Deployment, Release, WorkerVersion
from bot.engine.rails import Rails
from bot.engine.requests import DeployRequest, Plan, Requests


@dataclass(frozen=True, slots=True)
class LiveSplit:
    """What Cloudflare serves now for one service/environment."""

    service: str
    environment: str
    script: str
    deployment: Deployment | None
    versions: dict[str, WorkerVersion]


class ReleaseService(Requests, Approvals, Rails, Controls):
    async def live(self, service: str, environment: str | None) -> LiveSplit:
        env_name, env = self._environment(service, environment)
        deployment = await self.edge.active_deployment(env.script)
        versions: dict[str, WorkerVersion] = {}
        if deployment is not None:
            listed = {v.id: v for v in await self.edge.list_versions(env.script)}
            for share in deployment.versions:
                if share.version_id in listed:
                    versions[share.version_id] = listed[share.version_id]
        return LiveSplit(service, env_name, env.script, deployment, versions)

    async def resume_unfinished(self) -> list[Release]:
        """After a restart: make sure every release in flight has a timer to drive it; the
        scheduler picks them up (here or on another replica). Returns those rescheduled."""
        rescheduled = []
        for release in await self.repo.unfinished():
            if not release.state.is_active or release.id is None or release.paused:
                continue
            if not await self.timers.pending(release.id):
                await self.timers.schedule("advance", self.clock.now(), release.id)
                rescheduled.append(release)
        return rescheduled


__all__ = ["DeployRequest", "LiveSplit", "Plan", "ReleaseService"]
