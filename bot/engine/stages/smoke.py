"""Smoke test: the new version answers its health URL before any user reaches it."""

from __future__ import annotations

from bot.config import Config
from bot.engine.model import Release
from bot.engine.ports import Prober
from bot.engine.rollout import ProbeRecord
from bot.engine.stages.base import Passed, PreflightResult, Stop

SMOKE_TRIES = 3


class SmokeTest:
    name = "smoke test"

    def __init__(self, config: Config, prober: Prober | None) -> None:
        self.config = config
        self.prober = prober

    async def run(self, release: Release) -> PreflightResult:
        env = self.config.services[release.service].environments[release.environment]
        if not env.health_url or self.prober is None:
            return Passed()
        record = ProbeRecord()
        for _ in range(SMOKE_TRIES):
            ok, status, detail = await self.prober.health_probe(
                env.health_url, version_override=(release.script, release.version_id)
            )
            record = record.record(ok, status, detail)
            if ok:
                return Passed()
        return Stop(f"smoke test failed before any traffic: {record.last_failure_detail}")
