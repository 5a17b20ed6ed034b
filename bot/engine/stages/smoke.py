"""Smoke test: the new version answers its health URL before any user reaches it.

It runs once the release holds its environment (its start is stored, the stable version
read) and before the first traffic step: the new version joins the deployment at 0%
(:mod:`bot.engine.smoke`), the bot waits until Cloudflare shows that deployment as the live
one, then probes the health URL with the version override and reads which version answered.
Each stage of it is stored on the first step and audited (``smoke.deployed``,
``smoke.passed``, ``smoke.failed``), so a restart carries on where it was. A failed smoke
test puts the stable version back alone at 100% (one deployment) and stops the release.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.config import Config
from bot.engine.errors import EdgeError, EdgeRejected
from bot.engine.model import Deployment, Kind, Release, Step, StepStatus, VersionReport
from bot.engine.notices import SmokeUnconfirmed
from bot.engine.ports import EdgeDeployer, Prober
from bot.engine.recorder import BOT_ACTOR, Recorder
from bot.engine.reverter import Reverter, deploy_message, left_by
from bot.engine.smoke import (
    ACTIVE_RETRY,
    ACTIVE_TRIES,
    SMOKE_RETRY,
    SMOKE_SHARES,
    SMOKE_TRIES,
    SmokeRecord,
    judge,
    smoke_split,
)
from bot.engine.stages.traffic import Alarm, pause_for_drift
from bot.engine.states import State

VALIDATION = 10021  # Cloudflare's code for a request it finds invalid


class SmokeTest:
    """The opening of a deploy's first step; the driver runs it while :meth:`due`."""

    name = "smoke test"

    def __init__(
        self,
        config: Config,
        edge: EdgeDeployer,
        prober: Prober | None,
        recorder: Recorder,
        reverter: Reverter,
        alarm: Alarm,
    ) -> None:
        self.config = config
        self.edge = edge
        self.prober = prober
        self.recorder = recorder
        self.reverter = reverter
        self.alarm = alarm

    def due(self, release: Release) -> bool:
        """A deploy at its first step, with a health URL to probe, not smoke-tested yet."""
        if release.kind is not Kind.DEPLOY or release.state is not State.DEPLOYING:
            return False
        if release.current_step != 0 or not release.steps or self.prober is None:
            return False
        env = self.config.services[release.service].environments[release.environment]
        return bool(env.health_url) and not SmokeRecord.of(release.steps[0]).done

    async def run(self, release: Release, step: Step) -> bool:
        record = SmokeRecord.of(step)
        new, stable = release.version_id, release.stable_version_id
        if stable is None:
            why = "there is no live version to put it beside at 0%; the first step's gate judges it"
            await self._save(release, step, record.ended("skipped", why), "smoke.skipped")
            return True
        if stable != new and record.deployment_id is None:
            placed = await self._place(release, step, record, new, stable)
            if placed is None:
                return False
            release, record = placed
        if not record.active:
            seen = await self._await_active(release, step, record, new, stable)
            if seen is None:
                return False
            release, record = seen
        return await self._probe(release, step, record)

    # -- the 0% deployment -----------------------------------------------------------------

    async def _place(
        self, release: Release, step: Step, record: SmokeRecord, new: str, stable: str
    ) -> tuple[Release, SmokeRecord] | None:
        """Deploy the new version at the smallest share beside the stable one (written on
        the step and audited); None when the release stopped or paused instead."""
        label = release.version_tag or new[:8]
        try:
            active = await self.edge.active_deployment(release.script)
            found = _among(active, new, stable)
            if found is not None:
                deployment, share = found  # made before a restart: the intent was stored
            elif not left_by(release, active):
                assert active is not None
                await pause_for_drift(self.recorder, self.config, self.edge, release, step, active)
                return None
            else:
                deployment, share = await self._deploy(release, new, stable)
        except EdgeError as exc:
            await self._fail(
                release,
                step,
                record,
                f"the smoke test could not put {label} into the deployment at 0%: {exc}",
            )
            return None
        record = SmokeRecord(deployment_id=deployment.id, share=share)
        saved = await self._save(
            release,
            step,
            record,
            "smoke.deployed",
            deployment_id=deployment.id,
            split={s.version_id: s.percentage for s in deployment.versions},
        )
        return saved, record

    async def _deploy(self, release: Release, new: str, stable: str) -> tuple[Deployment, float]:
        message = deploy_message(release, "smoke test")
        for share in SMOKE_SHARES[:-1]:
            try:
                split = smoke_split(new, stable, share)
                return await self.edge.deploy(release.script, split, message), share
            except EdgeRejected as exc:
                if VALIDATION not in exc.codes:
                    raise  # refused for another reason: the next share would be too
        share = SMOKE_SHARES[-1]
        split = smoke_split(new, stable, share)
        return await self.edge.deploy(release.script, split, message), share

    async def _await_active(
        self, release: Release, step: Step, record: SmokeRecord, new: str, stable: str
    ) -> tuple[Release, SmokeRecord] | None:
        """The override applies only once the deployment holding the new version is the
        live one; read it back (a few times, a second apart) until it is."""
        try:
            active = await self.edge.active_deployment(release.script)
        except EdgeError as exc:
            await self._fail(
                release, step, record, f"the smoke test could not read the deployment back: {exc}"
            )
            return None
        ours = active is not None and (
            active.id == record.deployment_id or (stable == new and active.share_of(new) > 0)
        )
        if ours:
            return release, replace(record, active=True)
        if active is not None and not left_by(release, active):
            await pause_for_drift(self.recorder, self.config, self.edge, release, step, active)
            return None
        reads = record.active_reads + 1
        if reads >= ACTIVE_TRIES:
            await self._fail(
                release,
                step,
                record,
                f"the smoke test's deployment was not live on Cloudflare after {reads} reads",
            )
            return None
        saved = await self._save(release, step, replace(record, active_reads=reads))
        await self._wake(saved, ACTIVE_RETRY)
        return None

    # -- probing ---------------------------------------------------------------------------

    async def _probe(self, release: Release, step: Step, record: SmokeRecord) -> bool:
        assert self.prober is not None
        env = self.config.services[release.service].environments[release.environment]
        assert env.health_url is not None
        report = VersionReport(env.version_header, env.version_field)
        answer = await self.prober.version_probe(
            env.health_url, release.script, release.version_id, report
        )
        probes = record.probes.record(answer.ok, answer.status, answer.detail)
        record = replace(record, probes=probes, answered_by=answer.version_id)
        verdict = judge(answer, release.version_id, report)
        if verdict.outcome == "retry":
            if probes.probes >= SMOKE_TRIES:
                why = verdict.reason or answer.detail
                await self._fail(
                    release, step, record, f"smoke test failed before any traffic: {why}"
                )
                return False
            saved = await self._save(release, step, record)
            await self._wake(saved, SMOKE_RETRY)
            return False
        ended = record.ended(verdict.outcome, verdict.reason)
        saved = await self._save(
            release,
            step,
            ended,
            "smoke.passed",
            confirmed=verdict.outcome == "confirmed",
            answered_by=answer.version_id,
            status=answer.status,
            probe=answer.detail,
            reason=verdict.reason,
        )
        if verdict.outcome == "unconfirmed":
            await self.recorder.say(SmokeUnconfirmed(saved, verdict.reason or answer.detail))
        return True

    # -- storing -----------------------------------------------------------------------------

    async def _save(
        self,
        release: Release,
        step: Step,
        record: SmokeRecord,
        action: str | None = None,
        **detail: object,
    ) -> Release:
        record.store(step)
        entries = [self.recorder.entry(release, BOT_ACTOR, action, **detail)] if action else []
        return await self.recorder.save(release, entries, steps=(step,))

    async def _fail(self, release: Release, step: Step, record: SmokeRecord, why: str) -> None:
        """Audit the failure, then take the new version out again: the stable version alone
        at 100% (only over what this release left live), and the release stops."""
        step.status = StepStatus.FAILED
        saved = await self._save(
            release, step, record.ended("failed", why), "smoke.failed", reason=why
        )
        await self.reverter.fail_safe(saved, why, before_traffic=True)

    async def _wake(self, release: Release, after: timedelta) -> None:
        assert release.id is not None
        await self.alarm.at(release.id, self.recorder.clock.now() + after)


def _among(active: Deployment | None, new: str, stable: str) -> tuple[Deployment, float] | None:
    """The live deployment when it already is a smoke-test split of ``new`` beside
    ``stable`` (deployed before a restart), with the new version's share."""
    if active is None:
        return None
    for share in SMOKE_SHARES:
        if active.same_split(smoke_split(new, stable, share)):
            return active, share
    return None
