"""Traffic: each step of the plan is a shift (deploy the step's split) and then a gate (bake,
probe, judge) — the gate of the 100% step is the release's final verify.

Before changing traffic the shift checks that what is live is what this release left there;
a deployment made by someone else stops the release (paused, drift told) instead of being
deployed over.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.config import Config, Rollout
from bot.engine.drift import Drift, LastDeployed
from bot.engine.errors import EdgeError, EdgeRejected, EdgeUnavailable
from bot.engine.model import Deployment, Kind, Release, Step, StepStatus, VersionShare
from bot.engine.notices import DriftPaused, GateReport
from bot.engine.ports import Analytics, EdgeDeployer, Prober, Urgency
from bot.engine.recorder import BOT_ACTOR, Recorder
from bot.engine.reverter import Reverter, deploy_message, left_by
from bot.engine.rollback import refusal_in_words
from bot.engine.rollout import (
    GateVerdict,
    ProbeRecord,
    bake_deadline,
    bake_for,
    evaluate_gate,
    gate_summary,
    split_for,
)
from bot.engine.states import Event

ANALYTICS_TRIES = 3
ANALYTICS_RETRY = timedelta(seconds=5)
RATE_LIMITED = 429  # a health probe answered so was throttled, not judged


class Alarm(Protocol):
    """Have a release driven again at a time (a bake's end, the next probe)."""

    async def at(self, release_id: int, when: datetime) -> None: ...


class Finish(Protocol):
    """What follows a release's end (the queue moves on, the health summary is due)."""

    async def succeeded(self, release: Release) -> None: ...


def rollout_of(config: Config, release: Release) -> Rollout | None:
    if release.kind is not Kind.DEPLOY:
        return None
    env = config.services[release.service].environments[release.environment]
    return config.policies[env.policy].rollout


def split(release: Release, percent: int) -> tuple[VersionShare, ...]:
    return split_for(release.version_id, release.stable_version_id, percent)


async def pause_for_drift(
    recorder: Recorder,
    config: Config,
    edge: EdgeDeployer,
    release: Release,
    step: Step,
    active: Deployment,
) -> None:
    """Stop changing traffic, mark the release paused, tell the channel who changed what."""
    step.gate = {**(step.gate or {}), "drift": active.id}
    release.paused = True
    detail = {
        "deployment_id": active.id,
        "author_email": active.author_email,
        "split": {s.version_id: s.percentage for s in active.versions},
    }
    entry = recorder.entry(release, BOT_ACTOR, "release.paused_for_drift", **detail)
    saved = await recorder.save(release, [entry], steps=(step,))
    try:
        labels = {v.id: v.tag for v in await edge.list_versions(release.script) if v.tag}
    except EdgeError:
        labels = {}
    expected = LastDeployed(release.key, frozenset(), None)
    drift = Drift(release.service, release.environment, release.script, active, expected)
    await recorder.say(DriftPaused(saved, drift, labels, config.slack.command))


class Shift:
    """Deploy one step's split (written as an intent before the Cloudflare call)."""

    name = "shift"

    def __init__(
        self, config: Config, edge: EdgeDeployer, recorder: Recorder, reverter: Reverter
    ) -> None:
        self.config = config
        self.edge = edge
        self.recorder = recorder
        self.reverter = reverter

    async def run(self, release: Release, step: Step) -> bool:
        wanted = split(release, step.percent)
        urgency = Urgency.ROLLBACK if release.kind is Kind.ROLLBACK else Urgency.STEP
        call = self.recorder.edge_call(release, urgency)
        try:
            active = await self.edge.active_deployment(release.script, call)
            if active is not None and active.same_split(wanted):
                deployment = active  # deployed before a crash: the intent was stored first
            elif not left_by(release, active):
                assert active is not None
                await pause_for_drift(self.recorder, self.config, self.edge, release, step, active)
                return False
            else:
                deployment = await self.edge.deploy(
                    release.script, wanted, deploy_message(release, f"{step.percent}%"), call=call
                )
        except EdgeError as exc:
            await self.reverter.fail_safe(release, self.describe_failure(release, step, exc))
            return False
        step.status = StepStatus.DEPLOYED
        step.deployment_id = deployment.id
        step.deployed_at = self.recorder.clock.now()
        await self.recorder.transition(
            release,
            Event.STEP_DEPLOYED,
            BOT_ACTOR,
            steps=(step,),
            deployment_id=deployment.id,
            step_percent=step.percent,
            split={s.version_id: s.percentage for s in wanted},
        )
        return True

    def describe_failure(self, release: Release, step: Step, exc: Exception) -> str:
        if release.kind is Kind.ROLLBACK and isinstance(exc, EdgeRejected):
            label = release.version_tag or release.version_id[:8]
            return "Cloudflare refused the rollback. " + refusal_in_words(
                list(exc.codes), str(exc), label, command=self.config.slack.command
            )
        return f"step {step.percent}% could not be deployed: {exc}"


class Gate:
    """Bake the deployed step, probe its health URL, judge it by the version's numbers; the
    gate of the last step is the final verify. Moves on, waits, or decides a rollback."""

    name = "gate"

    def __init__(
        self,
        config: Config,
        edge: EdgeDeployer,
        analytics: Analytics,
        prober: Prober | None,
        recorder: Recorder,
        reverter: Reverter,
        alarm: Alarm,
        finish: Finish,
    ) -> None:
        self.config = config
        self.edge = edge
        self.analytics = analytics
        self.prober = prober
        self.recorder = recorder
        self.reverter = reverter
        self.alarm = alarm
        self.finish = finish

    async def run(self, release: Release, step: Step) -> bool:
        wanted = split(release, step.percent)
        try:
            active = await self.edge.active_deployment(
                release.script, self.recorder.edge_call(release)
            )
        except EdgeError as exc:
            await self.reverter.fail_safe(release, f"could not read the deployment back: {exc}")
            return False
        if active is None or not active.same_split(wanted):
            if (
                active is not None
                and active.id != step.deployment_id
                and not left_by(release, active)
            ):
                await pause_for_drift(self.recorder, self.config, self.edge, release, step, active)
                return False
            seen = f"Cloudflare serves {_describe(active)}, not the split just deployed"
            await self.reverter.fail_safe(release, seen)
            return False
        verdict = await self.judge(release, step)
        if verdict is None:
            return False  # waiting (a bake); an alarm is set
        return await self.after(release, step, active, verdict)

    async def judge(self, release: Release, step: Step) -> GateVerdict | None:
        rollout = rollout_of(self.config, release)
        if rollout is None:
            return await self._final_probe(release)
        gate: dict[str, Any] = dict(step.gate or {})
        now = self.recorder.clock.now()
        deployed_at = step.deployed_at or now
        deadline = bake_deadline(
            deployed_at, bake_for(rollout, step.percent), gate.get("extended", False)
        )
        env = self.config.services[release.service].environments[release.environment]
        probes = ProbeRecord.from_dict(gate.get("probes"))
        if env.health_url and self.prober is not None:
            last = gate.get("last_probe_at")
            if last is None or now - datetime.fromisoformat(last) >= rollout.probe_interval:
                ok, status, detail = await self.prober.health_probe(env.health_url)
                if status != RATE_LIMITED:  # a busy edge says nothing about the version
                    probes = probes.record(ok, status, detail)
                    gate["probes"] = probes.to_dict()
                gate["last_probe_at"] = now.isoformat()
        failing = probes.longest_failure_run >= rollout.probe_failures
        promoted = bool(gate.get("promote"))
        if now < deadline and not failing and not promoted:
            wake = min(deadline, now + rollout.probe_interval) if env.health_url else deadline
            await self._wait(release, step, gate, wake)
            return None
        new, stable = release.version_id, release.stable_version_id
        try:
            metrics = await self.analytics.version_metrics(
                release.script, deployed_at, now, self.recorder.edge_call(release)
            )
        except EdgeError as exc:
            if isinstance(exc, EdgeUnavailable) and exc.rate_limited and not failing:
                # Cloudflare's rate limit is no verdict on the version: ask again, uncounted
                gate["analytics_rate_limited"] = int(gate.get("analytics_rate_limited", 0)) + 1
                await self._wait(release, step, gate, now + ANALYTICS_RETRY)
                return None
            tries = int(gate.get("analytics_errors", 0)) + 1
            gate["analytics_errors"] = tries
            if tries < ANALYTICS_TRIES and not failing:
                await self._wait(release, step, gate, now + ANALYTICS_RETRY)
                return None
            return GateVerdict("fail", [f"no analytics to judge by after {tries} tries: {exc}"])
        verdict = evaluate_gate(
            rollout,
            step.percent,
            metrics.get(new),
            metrics.get(stable) if stable else None,
            probes if env.health_url else None,
            bool(gate.get("extended")) or promoted,
        )
        if promoted and not gate.get("extended"):
            early = "when the bake was ended early"
            verdict = replace(
                verdict,
                reasons=[r.replace("even after a longer bake", early) for r in verdict.reasons],
                note=verdict.note.replace("even after a longer bake", early)
                if verdict.note
                else None,
            )
        if verdict.outcome == "extend":
            gate["extended"] = True
            await self._wait(
                release,
                step,
                gate,
                bake_deadline(deployed_at, bake_for(rollout, step.percent), True),
            )
            # said once stored: a wait lost to a concurrent change is judged again
            await self.recorder.say(GateReport(release, step.percent, verdict))
            return None
        step.gate = gate
        return verdict

    async def _final_probe(self, release: Release) -> GateVerdict:
        """Without a rollout policy the final gate is one probe of the health URL (if any)."""
        env = self.config.services[release.service].environments[release.environment]
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
        await self.recorder.repo.save(release, [], steps=(step,))
        assert release.id is not None
        await self.alarm.at(release.id, until)

    async def after(
        self, release: Release, step: Step, active: Deployment, verdict: GateVerdict
    ) -> bool:
        summary = gate_summary(step.percent, verdict)
        entry = self.recorder.entry(
            release,
            BOT_ACTOR,
            "gate.passed" if verdict.outcome == "pass" else "gate.failed",
            step_percent=step.percent,
            **verdict.to_dict(),
        )
        step.gate = {
            **(step.gate or {}),
            "verdict": verdict.to_dict(),
            "summary": summary,
            "verified_deployment": active.id,
        }
        if verdict.outcome != "pass":
            step.status = StepStatus.FAILED
            intent = self.reverter.intent(BOT_ACTOR, f"health gate failed at {summary}")
            step.gate["rollback"] = intent
            # the verdict, the decision to roll back and its record are stored together
            saved = await self.recorder.save(release, [entry], steps=(step,))
            await self.recorder.say(GateReport(saved, step.percent, verdict))
            await self.reverter.roll_back_now(saved, step, intent)
            return False
        step.status = StepStatus.PASSED
        # Each report is said once its verdict is stored: a transition lost to a concurrent
        # change (a promote, a pause) is judged again, and must not be reported twice.
        report = GateReport(release, step.percent, verdict)
        reported = rollout_of(self.config, release) is not None
        if step.index == len(release.plan) - 1:
            done = await self.recorder.transition(
                release,
                Event.VERIFIED,
                BOT_ACTOR,
                steps=(step,),
                finished=True,
                preceding=[entry],
                deployment_id=active.id,
            )
            if reported:
                await self.recorder.say(report)
            await self.finish.succeeded(done)
            return False
        nxt = Step(
            index=step.index + 1,
            percent=release.plan[step.index + 1],
            intended_at=self.recorder.clock.now(),
        )
        await self.recorder.transition(
            release,
            Event.NEXT_STEP,
            BOT_ACTOR,
            steps=(step, nxt),
            changes={"current_step": nxt.index},
            preceding=[entry],
            step_percent=nxt.percent,
        )
        if reported:
            await self.recorder.say(report)
        return True


def _describe(deployment: Deployment | None) -> str:
    if deployment is None:
        return "no deployment"
    return " + ".join(f"{s.version_id[:8]} at {s.percentage:g}%" for s in deployment.versions)
