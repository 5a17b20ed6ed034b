"""The drift watch: every environment's live deployment against what the bot left there.

A deployment made outside the bot is announced in the release channel once — who, when, which
versions at which percentages, through what — and audited as ``drift.unauthorized_change``
(that record is also what makes it "announced": see :class:`bot.engine.drift.DriftLedger`).
Nothing is changed on Cloudflare: the next release there starts from what is live now,
because a release always reads the active deployment when it is prepared.

    watch = DriftWatch(service, ledger)
    await watch.run()          # the scheduler's job, every DEFAULT_INTERVAL seconds
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from bot.engine.core import BOT_ACTOR
from bot.engine.drift import (
    DRIFT_ACTION,
    Drift,
    DriftLedger,
    find_drift,
    last_deployed,
    reached_edge,
)
from bot.engine.model import AuditEntry, Release

log = logging.getLogger("releasebot.drift")

DEFAULT_INTERVAL = 60.0  # seconds between two looks at every environment
HISTORY_DEPTH = 50  # releases looked through for the last one that reached Cloudflare


class DriftWatch:
    """``service`` is the engine (a ``ReleaseService``): its config, repository, edge, clock
    and notifier are used, nothing else."""

    def __init__(self, service: Any, ledger: DriftLedger) -> None:
        self.service = service
        self.ledger = ledger

    async def run(self) -> list[Drift]:
        """Look at every service/environment; the drifts announced now. Never raises: a target
        that cannot be read is logged and looked at again next time."""
        announced = []
        for name, spec in self.service.config.services.items():
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
        engine = self.service
        script = engine.config.services[service].environments[environment].script
        # Cloudflare first: a bot deployment live by now belongs to a release that is either
        # still active (skipped below) or already recorded as finished.
        active = await engine.edge.active_deployment(script)
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
        try:
            await engine.notifier.audit_recorded([entry])
        except Exception:
            log.exception("posting the drift record failed")
        return drift

    async def _last_release(self, service: str, environment: str) -> Release | None:
        """The newest release there that reached Cloudflare; None while one is in flight."""
        for release in await self.service.repo.history(service, environment, HISTORY_DEPTH):
            if release.state.is_active:
                return None  # about to change traffic: its own checks watch the split
            if reached_edge(release):
                return release
        return None

    async def _announce(self, drift: Drift) -> None:
        engine = self.service
        try:
            labels = {v.id: v.tag for v in await engine.edge.list_versions(drift.script) if v.tag}
        except Exception:
            labels = {}
        text = describe(drift, labels, engine.config.slack.command)
        try:
            await engine.notifier.announce(text)
        except Exception:
            log.exception("announcing drift on %s/%s failed", drift.service, drift.environment)


def describe(drift: Drift, labels: dict[str, str], command: str = "/release") -> str:
    """The announcement, one paragraph."""
    dep = drift.deployment
    who = dep.author_email or "someone unknown"
    how = f" via {dep.source}" if dep.source else ""
    note = f" (“{dep.message}”)" if dep.message else ""
    expected = drift.expected
    text = (
        f":warning: *{drift.service}/{drift.environment} was changed outside the bot*: "
        f"deployment `{dep.id[:8]}` by {who}{how} at {_when(dep.created_on)}{note} serves "
        f"{_split(dep.versions, labels)}."
    )
    if expected.split:
        text += (
            f" The bot last left {_split(expected.split, labels)} there ({expected.release_key})."
        )
    text += " The next release there starts from what is live now"
    if expected.split and len(expected.split) == 1:
        back = expected.split[0].version_id[:8]
        text += f"; `{command} rollback {drift.service} in {drift.environment} to {back}` undoes it"
    return text + "."


def _split(shares: Any, labels: dict[str, str]) -> str:
    parts = []
    for share in shares:
        tag = labels.get(share.version_id)
        parts.append(f"`{share.version_id[:8]}`" + (f" ({tag})" if tag else ""))
        parts[-1] += f" {share.percentage:g}%"
    return " + ".join(parts)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
