"""Asking for a release: resolve, check the rails and the policy, store, and (dry run) plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.config import Environment
from bot.engine.core import EngineCore
from bot.engine.errors import NotFound
from bot.engine.freezes import FreezeWindow, active_freeze, describe
from bot.engine.model import Deployment, Kind, LockRecord, Release, Strategy
from bot.engine.policies import deploy_refusal, deployers_of, mention
from bot.engine.states import State
from bot.engine.versions import resolve_version


@dataclass(frozen=True, slots=True)
class DeployRequest:
    service: str
    version: str
    requested_by: str
    environment: str | None = None
    reason: str | None = None
    strategy: Strategy | None = None
    emergency: bool = False


@dataclass(slots=True)
class Plan:
    """What a deploy would need and do (``/release plan``); nothing is stored."""

    release: Release
    approvers: list[str]
    deployers: list[str] | None
    may_deploy: str | None  # refusal, or None
    lock: LockRecord | None
    freeze: FreezeWindow | None
    holder: Release | None
    queue_ahead: list[Release] = field(default_factory=list)
    progression: str | None = None  # refusal, or None
    rollout: Any = None


class Requests(EngineCore):
    def _environment(self, service: str, environment: str | None) -> tuple[str, Environment]:
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
        """The release a deploy would create, resolved against Cloudflare, not stored."""
        env_name, env = self._environment(request.service, request.environment)
        policy_name = env.policy
        if request.emergency:
            policy_name = self.config.emergency_policy_name(env.policy)
        policy = self.config.policies[policy_name]
        versions = await self.edge.list_versions(env.script)
        version = resolve_version(request.version, versions, env.script)
        active = await self.edge.active_deployment(env.script)
        env_policy = self.config.policies[env.policy]
        rollout = env_policy.rollout or policy.rollout
        strategy = request.strategy or (
            Strategy.GRADUAL if rollout is not None else Strategy.IMMEDIATE
        )
        plan = tuple(rollout.steps) if strategy is Strategy.GRADUAL and rollout else (100,)
        return Release(
            service=request.service,
            environment=env_name,
            script=env.script,
            version_id=version.id,
            version_tag=version.tag,
            version_message=version.message,
            stable_version_id=stable_of(active),
            requested_by=request.requested_by,
            policy=policy_name,
            kind=Kind.DEPLOY,
            strategy=strategy,
            plan=plan,
            reason=request.reason,
            emergency=request.emergency,
            approvals_required=max(policy.approvals_required, 1 if request.emergency else 0),
        )

    async def _freeze(self, environment: str) -> FreezeWindow | None:
        manual = await self.rails.freezes(environment)
        return active_freeze(self.config.freezes, manual, environment, self.clock.now())

    async def _progression(self, release: Release) -> str | None:
        needed = self.config.policies[
            self.config.services[release.service].environments[release.environment].policy
        ].requires_success_in
        if not needed or needed == release.environment:
            return None
        if needed not in self.config.services[release.service].environments:
            return None
        if not release.version_tag:
            return (
                f"{release.environment} takes only versions whose tag succeeded in {needed} "
                f"first, and {release.version_id[:8]} has no tag"
            )
        if await self.repo.succeeded_with_tag(release.service, needed, release.version_tag):
            return None
        return (
            f"{release.version_tag} has not succeeded in {release.service}/{needed} yet; "
            f"release it there first"
        )

    async def plan(self, request: DeployRequest) -> Plan:
        draft = await self.prepare(request)
        policy = self.config.policies[draft.policy]
        members = await self._members(policy.deployers, policy.approvers)
        holder = await self.repo.active_for(draft.service, draft.environment)
        return Plan(
            release=draft,
            approvers=list(policy.approvers),
            deployers=deployers_of(policy),
            may_deploy=deploy_refusal(draft.policy, policy, request.requested_by, members),
            lock=await self.rails.get_lock(draft.service, draft.environment),
            freeze=await self._freeze(draft.environment),
            holder=holder,
            queue_ahead=await self.repo.queued(draft.service, draft.environment),
            progression=await self._progression(draft),
            rollout=self.config.policies[
                self.config.services[draft.service].environments[draft.environment].policy
            ].rollout,
        )

    async def request_deploy(self, request: DeployRequest) -> Release:
        """Check and store a new release. Without approvals needed it is approved at once;
        the caller then starts it with :meth:`kick` (it may wait in the queue)."""
        draft = await self.prepare(request)
        actor = request.requested_by
        policy = self.config.policies[draft.policy]
        env_policy_name = self.config.services[draft.service].environments[draft.environment].policy
        env_policy = self.config.policies[env_policy_name]
        members = await self._members(env_policy.deployers, env_policy.approvers)
        refusal = deploy_refusal(env_policy_name, env_policy, actor, members)
        if refusal:
            raise await self._refuse(actor, "deploy", refusal, **_where(draft))
        window = await self._freeze(draft.environment)
        if window is not None and not request.emergency:
            override = self.config.emergency_policy_name(env_policy_name)
            text = (
                f"{draft.environment} is {describe(window)}. For a break-glass release add "
                f'`--emergency --reason "..."`; it needs the {override} approvals.'
            )
            raise await self._refuse(actor, "deploy", text, **_where(draft))
        progression = await self._progression(draft)
        if progression:
            raise await self._refuse(actor, "deploy", progression, **_where(draft))

        overridden = {"freeze_overridden": window.name} if window is not None else {}
        release = await self._store_new(
            draft, auto_reason=f"policy '{draft.policy}' needs no approval", **overridden
        )
        if release.state is State.AWAITING_APPROVAL:
            await self._say(
                release,
                f"Approval needed: {release.approvals_required} of {mention(policy.approvers)}"
                f" — use the buttons on the card or `/release approve {release.key}`.",
            )
        return release


def _where(release: Release) -> dict[str, str]:
    return {"service": release.service, "environment": release.environment}


def stable_of(deployment: Deployment | None) -> str | None:
    """The version to fall back to: the one alone at 100%, or the larger share of a split."""
    if deployment is None:
        return None
    if deployment.stable_version_id:
        return deployment.stable_version_id
    # A split left behind (by hand, or a release that did not finish): the larger share is
    # what most users see, so it is the one to fall back to.
    return max(deployment.versions, key=lambda s: s.percentage).version_id
