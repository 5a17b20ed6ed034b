"""Gradual rollouts: smoke test and D1 bookmark before traffic, a bake and a health gate at
every step, automatic rollback when a gate fails.

A rollback is decided before it is done: the decision (who, why, when) is stored on the
current step first, and the release's driver carries it out. So a rollback never races a
step being deployed, and one interrupted by a crash is finished by whoever drives next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bot.config import Environment, Rollout
from bot.engine.core import BOT_ACTOR, log
from bot.engine.driving import Driving, rollback_intent
from bot.engine.errors import ConcurrentUpdate, EdgeError, IllegalTransition, Refused
from bot.engine.model import AuditEntry, Deployment, Kind, Release, Step, StepStatus, VersionShare
from bot.engine.policies import mention
from bot.engine.rollout import (
    GateVerdict,
    ProbeRecord,
    bake_deadline,
    bake_for,
    evaluate_gate,
    gate_summary,
)
from bot.engine.states import Event, State
from bot.engine.timeline import build_timeline

SMOKE_TRIES = 3
ANALYTICS_TRIES = 3
ANALYTICS_RETRY = timedelta(seconds=5)
# How long a person's rollback request waits for another process driving the release to do it.
ROLLBACK_WAIT_S = 10.0


class Gates(Driving):
    def env_of(self, release: Release) -> Environment:
        return self.config.services[release.service].environments[release.environment]

    def rollout_of(self, release: Release) -> Rollout | None:
        if release.kind is not Kind.DEPLOY:
            return None
        return self.config.policies[self.env_of(release).policy].rollout

    # -- before any traffic -----------------------------------------------------------------

    async def _before_start(self, release: Release) -> dict[str, Any] | None:
        """Smoke test and D1 bookmark; the changes to store with START, or None (failed)."""
        if release.kind is not Kind.DEPLOY:
            return {}
        env = self.env_of(release)
        changes: dict[str, Any] = {}
        if env.health_url and self.prober is not None:
            record = ProbeRecord()
            for _ in range(SMOKE_TRIES):
                ok, status, detail = await self.prober.health_probe(
                    env.health_url, version_override=(release.script, release.version_id)
                )
                record = record.record(ok, status, detail)
                if ok:
                    break
            if record.consecutive_failures >= SMOKE_TRIES:
                await self._fail_before_traffic(
                    release,
                    f"smoke test failed before any traffic: {record.last_failure_detail}",
                )
                return None
        if env.d1_database_id and not release.d1_bookmark:
            try:
                changes["d1_bookmark"] = await self.edge.d1_bookmark(env.d1_database_id)
            except EdgeError as exc:
                await self._fail_before_traffic(
                    release, f"could not take the D1 backup bookmark: {exc}"
                )
                return None
        return changes

    async def _fail_before_traffic(self, release: Release, why: str) -> None:
        try:
            failed = await self._transition(
                release, Event.FAIL, BOT_ACTOR, outcome=why, finished=True, stable_restored=True
            )
        except (ConcurrentUpdate, IllegalTransition):
            return
        await self._say(failed, f":red_circle: {failed.key} stopped: {why}. No user saw it.")
        await self.ended(failed)

    async def _start(self, release: Release) -> bool:
        lock = await self.rails.get_lock(release.service, release.environment)
        if lock is not None:
            log.info("%s waits: %s is locked", release.key, release.target)
            return False
        holder = await self.repo.active_for(release.service, release.environment)
        if holder is not None and holder.id != release.id:
            log.info("%s waits in the queue behind %s", release.key, holder.key)
            return False
        changes = await self._before_start(release)
        if changes is None:
            return False
        step = Step(index=0, percent=release.plan[0], intended_at=self.clock.now())
        try:
            await self._transition(
                release,
                Event.START,
                BOT_ACTOR,
                steps=(step,),
                changes={"current_step": 0, **changes},
                step_percent=step.percent,
                d1_bookmark=changes.get("d1_bookmark"),
            )
        except Refused:
            log.info("%s waits in the queue for %s", release.key, release.target)
            return False
        return True

    # -- the gate ---------------------------------------------------------------------------

    async def judge(self, release: Release, step: Step, active: Deployment) -> object | None:
        rollout = self.rollout_of(release)
        if rollout is None:
            return await self._final_probe(release)
        gate: dict[str, Any] = dict(step.gate or {})
        now = self.clock.now()
        deployed_at = step.deployed_at or now
        deadline = bake_deadline(
            deployed_at, bake_for(rollout, step.percent), gate.get("extended", False)
        )
        env = self.env_of(release)
        probes = ProbeRecord.from_dict(gate.get("probes"))
        if env.health_url and self.prober is not None:
            last = gate.get("last_probe_at")
            if last is None or now - datetime.fromisoformat(last) >= rollout.probe_interval:
                ok, status, detail = await self.prober.health_probe(env.health_url)
                probes = probes.record(ok, status, detail)
                gate["probes"] = probes.to_dict()
                gate["last_probe_at"] = now.isoformat()
        failing = probes.longest_failure_run >= rollout.probe_failures
        promoted = bool(gate.get("promote"))
        if now < deadline and not failing and not promoted:
            wake = deadline
            if env.health_url:
                wake = min(deadline, now + rollout.probe_interval)
            await self._wait(release, step, gate, wake)
            return None
        new, stable = release.version_id, release.stable_version_id
        try:
            metrics = await self.analytics.version_metrics(release.script, deployed_at, now)
        except EdgeError as exc:
            tries = int(gate.get("analytics_errors", 0)) + 1
            gate["analytics_errors"] = tries
            if tries < ANALYTICS_TRIES and not failing:
                log.warning("analytics unavailable for %s (%s); retrying", release.key, exc)
                await self._wait(release, step, gate, now + ANALYTICS_RETRY)
                return None
            return GateVerdict("fail", [f"no analytics to judge by after {tries} tries: {exc}"])
        verdict = evaluate_gate(
            rollout,
            step.percent,
            metrics.get(new),
            metrics.get(stable) if stable else None,
            probes if env.health_url else None,
            # a person ended the bake: judge what traffic there was, never bake on
            bool(gate.get("extended")) or promoted,
        )
        if promoted and not gate.get("extended"):
            verdict = replace(
                verdict,
                reasons=[
                    r.replace("even after a longer bake", "when the bake was ended early")
                    for r in verdict.reasons
                ],
            )
        if verdict.outcome == "extend":
            gate["extended"] = True
            await self._say(release, f":hourglass: {gate_summary(step.percent, verdict)}")
            await self._wait(
                release,
                step,
                gate,
                bake_deadline(deployed_at, bake_for(rollout, step.percent), True),
            )
            return None
        step.gate = gate
        return verdict

    async def _final_probe(self, release: Release) -> GateVerdict:
        """Without a rollout policy the final gate is one probe of the health URL (if any)."""
        env = self.env_of(release)
        if release.kind is not Kind.DEPLOY or not env.health_url or self.prober is None:
            return GateVerdict("pass")
        ok, status, detail = await self.prober.health_probe(env.health_url)
        record = ProbeRecord().record(ok, status, detail)
        if ok:
            return GateVerdict("pass", probe_failures=0)
        return GateVerdict(
            "fail", [f"health probe failed: {detail}"], probe_failures=record.failures
        )

    async def _wait(
        self, release: Release, step: Step, gate: dict[str, Any], until: datetime
    ) -> None:
        step.gate = gate
        await self.repo.save(release, [], steps=(step,))
        assert release.id is not None
        await self.schedule_advance(release.id, until)

    async def after_gate(
        self,
        release: Release,
        step: Step,
        active: Deployment,
        verdict: object,
        records: Sequence[AuditEntry] = (),
    ) -> bool:
        if not isinstance(verdict, GateVerdict):
            return await super().after_gate(release, step, active, verdict, records)
        summary = gate_summary(step.percent, verdict)
        entry = AuditEntry(
            actor=BOT_ACTOR,
            action="gate.passed" if verdict.outcome == "pass" else "gate.failed",
            at=self.clock.now(),
            release_id=release.id,
            release_key=release.key,
            service=release.service,
            environment=release.environment,
            detail={"step_percent": step.percent, **verdict.to_dict()},
        )
        step.gate = {**(step.gate or {}), "verdict": verdict.to_dict(), "summary": summary}
        if verdict.outcome == "pass":
            if self.rollout_of(release) is not None:
                await self._say(release, f":white_check_mark: {summary}")
            # the verdict's record is stored with the move it allows
            return await super().after_gate(release, step, active, verdict, [*records, entry])
        step.status = StepStatus.FAILED
        intent = self._intent(BOT_ACTOR, f"health gate failed at {summary}")
        step.gate["rollback"] = intent
        # the verdict, the decision to roll back and its audit record are stored together
        saved = await self.repo.save(release, [entry], steps=(step,))
        await self._post_audit([entry])
        await self._say(saved, f":x: {summary}")
        await self._roll_back_now(saved, step, intent)
        return False

    # -- rolling back -----------------------------------------------------------------------

    def _intent(self, actor: str, why: str) -> dict[str, Any]:
        return {"actor": actor, "why": why, "at": self.clock.now().isoformat()}

    async def _advance(self, release: Release) -> bool:
        intent = rollback_intent(release)
        if intent is not None and release.state in (State.DEPLOYING, State.VERIFYING):
            await self._roll_back_now(release, release.steps[release.current_step], intent)
            return False
        return await super()._advance(release)

    async def roll_back(self, release: Release, actor: str, why: str) -> Release | None:
        """Roll a release that is rolling out back, on a person's request: store the decision,
        then have the release's driver put the stable version back at 100%. Returns the
        release as it is then (rolled back, unless another process is still at it)."""
        assert release.id is not None
        for _ in range(10):
            release = await self._reload(release)
            if release.state not in (State.DEPLOYING, State.VERIFYING):
                return release
            if rollback_intent(release) is not None:
                break  # already decided (a gate, or someone else a moment ago)
            step = release.steps[release.current_step]
            step.gate = {**(step.gate or {}), "rollback": self._intent(actor, why)}
            try:
                await self.repo.save(release, [], steps=(step,))
                break
            except ConcurrentUpdate:
                continue  # the driver moved on meanwhile: decide on the release as it is now
        kicked = await self.kick(release.id)
        if kicked is not None and kicked.state.is_terminal:
            return kicked
        # another process drives it and is in the middle of a step; it rolls back next
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ROLLBACK_WAIT_S
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            current = await self._reload(release)
            if current.state.is_terminal:
                return current
        return await self._reload(release)

    async def _roll_back_now(
        self, release: Release, step: Step, intent: dict[str, Any]
    ) -> Release | None:
        """Carry out a stored rollback decision: the stable version at 100% in one deployment
        (none when it already serves everything, e.g. the deployment landed before a crash),
        read back, and the release ended. Only the release's driver calls this."""
        actor = str(intent.get("actor") or BOT_ACTOR)
        why = str(intent.get("why") or "rolled back")
        try:
            detected = datetime.fromisoformat(str(intent["at"]))
        except (KeyError, ValueError):
            detected = self.clock.now()
        stable = release.stable_version_id
        if not stable:
            await self.fail_safe(release, f"{why}; there is no earlier version to return to")
            return None
        try:
            active = await self.edge.active_deployment(release.script)
            if active is not None and active.stable_version_id == stable:
                deployment = active
            else:
                deployment = await self.edge.deploy(
                    release.script,
                    (VersionShare(stable, 100),),
                    self._message(release, "rollback"),
                )
                active = await self.edge.active_deployment(release.script)
        except EdgeError as exc:
            await self.fail_safe(release, f"{why}; the rollback deployment failed: {exc}")
            return None
        took = (self.clock.now() - detected).total_seconds()
        verified = active is not None and active.stable_version_id == stable
        if not verified:
            why += (
                f" — Cloudflare does not show `{stable[:8]}` at 100% after the rollback; "
                "check the live split on Cloudflare now"
            )
        release = await self._reload(release)
        if release.state not in (State.DEPLOYING, State.VERIFYING):
            return None
        current = release.steps[release.current_step] if release.steps else step
        try:
            # a ConcurrentUpdate goes up to the driver, which looks again and finishes this
            rolled = await self._transition(
                release,
                Event.ROLL_BACK,
                actor,
                steps=(current,),
                outcome=why,
                finished=True,
                to_version_id=stable,
                deployment_id=deployment.id,
                time_to_rollback_s=round(max(took, 0.0), 3),
                verified=verified,
            )
        except IllegalTransition:
            return None
        await self._announce_rollback(rolled, why)
        await self.ended(rolled)
        return rolled

    async def _announce_rollback(self, release: Release, why: str) -> None:
        votes = await self.votes.votes(release.id or 0)
        people = [release.requested_by, *(v.user_id for v in votes if v.approve)]
        text = (
            f":rotating_light: {release.key} {release.service} "
            f"{release.version_tag or release.version_id[:8]} → {release.environment} "
            f"rolled back to `{(release.stable_version_id or '')[:8]}`: {why}. "
            f"{mention(dict.fromkeys(people))}"
        )
        if release.d1_bookmark:
            text += (
                f"\nThe Worker rollback does not touch D1 data; a bookmark from before "
                f"{release.key} exists: `{self.config.slack.command} restore-db {release.key}`."
            )
        await self._announce(text)
        entries = await self.repo.audit_for(release.id or 0)
        await self._say(release, "Timeline:\n" + build_timeline(release, entries))
