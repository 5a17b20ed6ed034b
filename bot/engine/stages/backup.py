"""Backup: a D1 Time Travel bookmark before anything changes, for ``restore-db``."""

from __future__ import annotations

from bot.config import Config
from bot.engine.errors import EdgeError
from bot.engine.model import Release
from bot.engine.ports import EdgeDeployer
from bot.engine.stages.base import Passed, PreflightResult, Stop


class Backup:
    name = "backup"

    def __init__(self, config: Config, edge: EdgeDeployer) -> None:
        self.config = config
        self.edge = edge

    async def run(self, release: Release) -> PreflightResult:
        env = self.config.services[release.service].environments[release.environment]
        if not env.d1_database_id or release.d1_bookmark:
            return Passed()
        try:
            bookmark = await self.edge.d1_bookmark(env.d1_database_id)
        except EdgeError as exc:
            return Stop(f"could not take the D1 backup bookmark: {exc}")
        return Passed(changes={"d1_bookmark": bookmark}, detail={"d1_bookmark": bookmark})
