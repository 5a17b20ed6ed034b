"""A rollback's pre-flight: its target served all traffic there before, and Cloudflare can
still deploy it (the target is among the uploaded versions)."""

from __future__ import annotations

from bot.engine.errors import EdgeError
from bot.engine.model import Release
from bot.engine.ports import EdgeDeployer
from bot.engine.rollback import DEPLOYABLE_VERSIONS
from bot.engine.stages.base import Passed, PreflightResult, Stop


class RollbackPreflight:
    name = "pre-flight"

    def __init__(self, edge: EdgeDeployer) -> None:
        self.edge = edge

    async def run(self, release: Release) -> PreflightResult:
        try:
            versions = await self.edge.list_versions(release.script)
        except EdgeError as exc:
            return Stop(f"could not list the versions of {release.script}: {exc}")
        ids = [v.id for v in versions[:DEPLOYABLE_VERSIONS]]
        if release.version_id not in ids:
            return Stop(
                f"{release.version_id[:8]} is no longer among the {DEPLOYABLE_VERSIONS} most "
                "recent versions Cloudflare can deploy; roll forward with a deploy"
            )
        return Passed()
