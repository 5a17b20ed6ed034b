"""Admission: the environment is free — not locked, no other release changing it."""

from __future__ import annotations

from bot.engine.model import Release
from bot.engine.ports import RailsRepository, ReleaseRepository
from bot.engine.stages.base import Hold, Passed, PreflightResult


class Admission:
    name = "admission"

    def __init__(self, rails: RailsRepository, repo: ReleaseRepository) -> None:
        self.rails = rails
        self.repo = repo

    async def run(self, release: Release) -> PreflightResult:
        lock = await self.rails.get_lock(release.service, release.environment)
        if lock is not None:
            return Hold(f"{release.target} is locked")
        holder = await self.repo.active_for(release.service, release.environment)
        if holder is not None and holder.id != release.id:
            return Hold(f"{holder.key} holds {release.target}")
        return Passed()
