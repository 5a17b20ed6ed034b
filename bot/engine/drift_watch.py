"""The drift watch: every environment's live deployment against what the bot left there.

A deployment made outside the bot is announced in the release channel once — who, when, which
versions at which percentages, through what — and audited as ``drift.unauthorized_change``
(that record is also what makes it "announced": see :class:`bot.engine.drift.DriftLedger`).
Nothing is changed on Cloudflare: the next release there starts from what is live now,
because a release always reads the active deployment when it is prepared.

    watch = DriftWatch(config, repo, edge, recorder, ledger)
    await watch.run()          # the scheduler's job, every DEFAULT_INTERVAL seconds
"""

from __future__ import annotations

import logging

from bot.config import Config
from bot.engine.drift import (
    DRIFT_ACTION,
    Drift,
    DriftLedger,
    find_drift,
    last_deployed,
    reached_edge,
)
from bot.engine.model import AuditEntry, Release
from bot.engine.notices import DriftFound
from bot.engine.ports import READ, READ_FRESH, EdgeDeployer, ReleaseRepository
from bot.engine.recorder import BOT_ACTOR, Recorder

log = logging.getLogger("releasebot.drift")

DEFAULT_INTERVAL = 60.0  # seconds between two looks at every environment
HISTORY_DEPTH = 50  # releases looked through for the last one that reached Cloudflare


class DriftWatch:
    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        edge: EdgeDeployer,
        recorder: Recorder,
        ledger: DriftLedger,
    ) -> None:
        self.config = config
        self.repo = repo
        self.edge = edge
        self.recorder = recorder
        self.clock = recorder.clock
        self.ledger = ledger

    async def run(self) -> list[Drift]:
        """Look at every service/environment; the drifts announced now. Never raises: a target
        that cannot be read is logged and looked at again next time."""
        announced = []
        for name, spec in self.config.services.items():
            for environment in spec.environments:
                try:
                    drift = await self.check(name, environment)
                except Exception:
                    log.exception("looking for drift on %s/%s failed", name, environment)
                    continue
                if drift is not None:
                    announced.append(drift)
        return announced

    async def check(self, service: str, environment: str) -> Drift | None:
        """Announce and audit a drift on service/environment unless it was announced before;
        returns it when announced now."""
        engine = self
        script = engine.config.services[service].environments[environment].script
        # Cloudflare first: a bot deployment live by now belongs to a release that is either
        # still active (skipped below) or already recorded as finished.
        active = await engine.edge.active_deployment(script, READ_FRESH)
        if active is None or await engine.repo.active_for(service, environment) is not None:
            return None
        last = await self._last_release(service, environment)
        if last is None:
            return None
        assert last.id is not None
        known = last_deployed(last, await engine.repo.audit_for(last.id))
        drift = find_drift(service, environment, script, active, known)
        if drift is None:
            return None
        entry = AuditEntry(
            actor=BOT_ACTOR,
            action=DRIFT_ACTION,
            at=engine.clock.now(),
            service=service,
            environment=environment,
            detail=drift.detail(),
        )
        if not await self.ledger.record_once(entry, active.id):
            return None
        log.warning(
            "%s/%s changed outside the bot: deployment %s by %s",
            service,
            environment,
            active.id,
            active.author_email or "someone unknown",
        )
        await self._announce(drift)
        await self.recorder.posted([entry])
        return drift

    async def _last_release(self, service: str, environment: str) -> Release | None:
        """The newest release there that reached Cloudflare; None while one is in flight."""
        for release in await self.repo.history(service, environment, HISTORY_DEPTH):
            if release.state.is_active:
                return None  # about to change traffic: its own checks watch the split
            if reached_edge(release):
                return release
        return None

    async def _announce(self, drift: Drift) -> None:
        try:
            labels = {
                v.id: v.tag for v in await self.edge.list_versions(drift.script, READ) if v.tag
            }
        except Exception:
            labels = {}
        await self.recorder.say(DriftFound(drift, labels, self.config.slack.command))
