"""Release use cases: load, transition, save (with the audit entry), call the ports.

The service never talks Slack or SQL; it gets a repository, an edge deployer and a notifier.
Every state change goes through :meth:`ReleaseService._transition`, which writes exactly one
audit entry in the same transaction as the change, then tells the notifier.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.config import Config
from bot.engine import audit
from bot.engine.errors import EdgeError, NotFound, ReleaseError
from bot.engine.machine import next_state
from bot.engine.model import (
    AuditEntry,
    Deployment,
    Kind,
    Release,
    Step,
    StepStatus,
    Strategy,
    VersionShare,
    WorkerVersion,
)
from bot.engine.ports import Clock, EdgeDeployer, Notifier, ReleaseRepository
from bot.engine.states import Event, State
from bot.engine.versions import resolve_version

log = logging.getLogger("releasebot.engine")

BOT_ACTOR = "releasebot"
DEPLOY_MESSAGE_MAX = 50  # Cloudflare's workers/message annotation limit


@dataclass(frozen=True, slots=True)
class DeployRequest:
    service: str
    version: str
    requested_by: str
    environment: str | None = None
    reason: str | None = None
    strategy: Strategy | None = None


@dataclass(frozen=True, slots=True)
class LiveSplit:
    """What Cloudflare serves now for one service/environment."""

    service: str
    environment: str
    script: str
    deployment: Deployment | None
    versions: dict[str, WorkerVersion]


class ReleaseService:
    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        edge: EdgeDeployer,
        notifier: Notifier,
        clock: Clock,
    ) -> None:
        self.config = config
        self.repo = repo
        self.edge = edge
        self.notifier = notifier
        self.clock = clock

    # -- requests ---------------------------------------------------------------------------

    def _environment(self, service: str, environment: str | None) -> tuple[str, Any]:
        if service not in self.config.services:
            known = ", ".join(sorted(self.config.services))
            raise NotFound(f"unknown service '{service}' (known: {known})")
        envs = self.config.services[service].environments
        if environment is not None and environment not in envs:
            raise NotFound(
                f"{service} has no environment '{environment}' (it has: {', '.join(envs)})"
            )
        return self.config.environment(service, environment)

    async def prepare(self, request: DeployRequest) -> Release:
        """Everything a deploy needs, resolved and checked, but not stored (also the dry run)."""
        env_name, env = self._environment(request.service, request.environment)
        policy = self.config.policies[env.policy]
        versions = await self.edge.list_versions(env.script)
        version = resolve_version(request.version, versions, env.script)
        active = await self.edge.active_deployment(env.script)
        strategy = request.strategy or (
            Strategy.GRADUAL if policy.rollout is not None else Strategy.IMMEDIATE
        )
        if strategy is Strategy.GRADUAL and policy.rollout is not None:
            plan: tuple[int, ...] = tuple(policy.rollout.steps)
        else:
            plan = (100,)
        return Release(
            service=request.service,
            environment=env_name,
            script=env.script,
            version_id=version.id,
            version_tag=version.tag,
            version_message=version.message,
            stable_version_id=_stable_of(active),
            requested_by=request.requested_by,
            policy=env.policy,
            kind=Kind.DEPLOY,
            strategy=strategy,
            plan=plan,
            reason=request.reason,
            approvals_required=policy.approvals_required,
        )

    async def request_deploy(self, request: DeployRequest) -> Release:
        """Store a new release; with a policy that needs no approval it is approved at once.

        The caller drives it (:meth:`drive`) after answering the person."""
        draft = await self.prepare(request)
        now = self.clock.now()
        draft.created_at = draft.updated_at = now
        entries = [audit.created_entry(draft, now)]
        if draft.approvals_required == 0:
            draft.state = next_state(State.REQUESTED, Event.AUTO_APPROVE)
            entries.append(
                audit.transition_entry(
                    draft,
                    BOT_ACTOR,
                    Event.AUTO_APPROVE,
                    State.REQUESTED,
                    now,
                    reason=f"policy '{draft.policy}' needs no approval",
                )
            )
        else:
            draft.state = next_state(State.REQUESTED, Event.SUBMIT)
            policy = self.config.policies[draft.policy]
            draft.expires_at = now + policy.approval_ttl
            entries.append(
                audit.transition_entry(draft, BOT_ACTOR, Event.SUBMIT, State.REQUESTED, now)
            )
        release = await self.repo.create(draft, entries)
        log.info("release requested", extra={"release_id": release.key, "state": release.state})
        await self._tell(release, entries)
        return release

    # -- driving ----------------------------------------------------------------------------

    async def drive(self, release_id: int) -> Release | None:
        """Advance the release as far as it can go now (to a terminal state, or to a wait)."""
        while True:
            release = await self.repo.get(release_id)
            if release is None or not release.state.is_active or release.paused:
                return release
            if not await self._advance(release):
                return await self.repo.get(release_id)

    async def resume_unfinished(self) -> list[Release]:
        """After a restart: drive every release that was mid-flight; returns them as they end."""
        ended = []
        for release in await self.repo.unfinished():
            if release.state.is_active and release.id is not None:
                log.info("resuming release", extra={"release_id": release.key})
                result = await self.drive(release.id)
                if result is not None:
                    ended.append(result)
        return ended

    async def _advance(self, release: Release) -> bool:
        """One step forward; False when the release has to wait."""
        if release.state is State.APPROVED:
            step = Step(index=0, percent=release.plan[0], intended_at=self.clock.now())
            await self._transition(
                release,
                Event.START,
                BOT_ACTOR,
                steps=(step,),
                current_step=0,
                step_percent=step.percent,
            )
            return True
        step = release.steps[release.current_step]
        if release.state is State.DEPLOYING:
            return await self._deploy_step(release, step)
        if release.state is State.VERIFYING:
            return await self._verify_step(release, step)
        return False

    def _split(self, release: Release, percent: int) -> tuple[VersionShare, ...]:
        if percent >= 100 or not release.stable_version_id:
            return (VersionShare(release.version_id, 100),)
        return (
            VersionShare(release.version_id, percent),
            VersionShare(release.stable_version_id, 100 - percent),
        )

    def _message(self, release: Release, what: str) -> str:
        label = release.version_tag or release.version_id[:8]
        return f"{release.key} {what} {label}"[:DEPLOY_MESSAGE_MAX]

    async def _deploy_step(self, release: Release, step: Step) -> bool:
        split = self._split(release, step.percent)
        try:
            # The intent was stored before this call; after a crash the split may already be
            # live, so look before deploying again.
            active = await self.edge.active_deployment(release.script)
            if active is not None and active.same_split(split):
                deployment = active
            else:
                deployment = await self.edge.deploy(
                    release.script, split, self._message(release, f"{step.percent}%")
                )
        except EdgeError as exc:
            await self._fail_safe(release, f"Cloudflare refused step {step.percent}%: {exc}")
            return False
        step.status = StepStatus.DEPLOYED
        step.deployment_id = deployment.id
        step.deployed_at = self.clock.now()
        await self._transition(
            release,
            Event.STEP_DEPLOYED,
            BOT_ACTOR,
            steps=(step,),
            deployment_id=deployment.id,
            step_percent=step.percent,
            split={s.version_id: s.percentage for s in split},
        )
        return True

    async def _verify_step(self, release: Release, step: Step) -> bool:
        split = self._split(release, step.percent)
        try:
            active = await self.edge.active_deployment(release.script)
        except EdgeError as exc:
            await self._fail_safe(release, f"could not read the deployment back: {exc}")
            return False
        if active is None or not active.same_split(split):
            seen = _describe(active)
            await self._fail_safe(release, f"Cloudflare serves {seen}, not the split just deployed")
            return False
        step.status = StepStatus.PASSED
        step.gate = {"verified_deployment": active.id}
        if step.index == len(release.plan) - 1:
            await self._transition(
                release,
                Event.VERIFIED,
                BOT_ACTOR,
                steps=(step,),
                finished=True,
                deployment_id=active.id,
            )
            return False
        nxt = Step(
            index=step.index + 1, percent=release.plan[step.index + 1], intended_at=self.clock.now()
        )
        await self._transition(
            release,
            Event.NEXT_STEP,
            BOT_ACTOR,
            steps=(step, nxt),
            current_step=nxt.index,
            step_percent=nxt.percent,
        )
        return True

    async def _fail_safe(self, release: Release, why: str) -> None:
        """Put the stable version back at 100% (if it is not), then mark the release failed."""
        restored = None
        stable = release.stable_version_id
        if stable:
            try:
                active = await self.edge.active_deployment(release.script)
                if active is None or active.stable_version_id != stable:
                    await self.edge.deploy(
                        release.script,
                        (VersionShare(stable, 100),),
                        self._message(release, "restore"),
                    )
                    active = await self.edge.active_deployment(release.script)
                restored = active is not None and active.stable_version_id == stable
            except EdgeError as exc:
                why += f"; putting {stable[:8]} back at 100% failed too: {exc}"
                restored = False
        if restored is False:
            why += " — check the live split on Cloudflare now"
        release = await self._reload(release)
        if release.state.is_terminal:
            return
        await self._transition(
            release, Event.FAIL, BOT_ACTOR, outcome=why, finished=True, stable_restored=restored
        )

    # -- reading ----------------------------------------------------------------------------

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

    async def get(self, release_id: int) -> Release:
        release = await self.repo.get(release_id)
        if release is None:
            raise NotFound(f"there is no release R-{release_id}")
        return release

    # -- internals --------------------------------------------------------------------------

    async def _reload(self, release: Release) -> Release:
        assert release.id is not None
        fresh = await self.repo.get(release.id)
        if fresh is None:
            raise NotFound(f"{release.key} disappeared")
        return fresh

    async def _transition(
        self,
        release: Release,
        event: Event,
        actor: str,
        *,
        steps: Sequence[Step] = (),
        current_step: int | None = None,
        outcome: str | None = None,
        finished: bool = False,
        **detail: Any,
    ) -> Release:
        before = release.state
        now = self.clock.now()
        changed = release.copy(state=next_state(before, event), updated_at=now)
        if current_step is not None:
            changed.current_step = current_step
        if outcome is not None:
            changed.outcome = outcome
        if finished:
            changed.finished_at = now
        entry = audit.transition_entry(
            changed, actor, event, before, now, outcome=outcome, **detail
        )
        saved = await self.repo.save(changed, [entry], steps=steps)
        await self._tell(saved, [entry])
        return saved

    async def _tell(self, release: Release, entries: Sequence[AuditEntry]) -> None:
        try:
            await self.notifier.release_changed(release)
            await self.notifier.audit_recorded([_with_release(e, release) for e in entries])
        except Exception:  # the state is stored; telling people must not undo or stop it
            log.exception("notifying about %s failed", release.key)


def _stable_of(deployment: Deployment | None) -> str | None:
    if deployment is None:
        return None
    if deployment.stable_version_id:
        return deployment.stable_version_id
    # A split left behind (by hand, or a release that did not finish): the larger share is
    # what most users see, so it is the one to fall back to.
    return max(deployment.versions, key=lambda s: s.percentage).version_id


def _describe(deployment: Deployment | None) -> str:
    if deployment is None:
        return "no deployment"
    return " + ".join(f"{s.version_id[:8]} at {s.percentage:g}%" for s in deployment.versions)


def _with_release(entry: AuditEntry, release: Release) -> AuditEntry:
    if entry.release_id is not None:
        return entry
    from dataclasses import replace

    return replace(entry, release_id=release.id, release_key=release.key)


__all__ = ["DeployRequest", "LiveSplit", "ReleaseError", "ReleaseService"]
