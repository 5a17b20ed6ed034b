"""Asking for a release — deploy, rollback, restore-db — and the dry run (``plan``).

Each request resolves what it is about against Cloudflare, asks the policy (through the
gatekeeper) and stores the new release: approved at once when the policy allows it, else
waiting for the approvals it names. The caller starts an approved release with the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from bot.config import Config, GitHubSource, Rollout
from bot.engine.diff import VersionDiff, version_diff
from bot.engine.errors import EdgeError, NotFound, SourceError
from bot.engine.facts import Gatekeeper
from bot.engine.freezes import FreezeWindow
from bot.engine.known_good import LastGood, first_rollback_target, last_good_of
from bot.engine.migration_planner import MigrationPlanner
from bot.engine.migrations import MigrationPlan
from bot.engine.model import (
    EXPIRE,
    Deployment,
    Kind,
    LockRecord,
    Release,
    Strategy,
    WorkerVersion,
)
from bot.engine.notices import ApprovalRequested, RollbackRequested
from bot.engine.policy import Action, Ask, Facts, NeedsApprovals, Refusal, decide
from bot.engine.ports import EdgeDeployer, RailsRepository, ReleaseRepository, TimerRepository
from bot.engine.quorum import deployers_of
from bot.engine.recorder import Recorder
from bot.engine.rollback import previous_stable
from bot.engine.source import BuildsReader, CodeHost, Comparison, SourceCall
from bot.engine.sources import VersionSource, resolve_source
from bot.engine.states import State
from bot.engine.versions import resolve_version

log = logging.getLogger("releasebot.engine")
# Seconds the diff's comparison may wait for GitHub: it never holds a request up for a rate
# limit (the commits are then shown as not read; the checks wait it out themselves).
COMPARE_BUDGET = 1.0
HostFor = Callable[[GitHubSource], CodeHost | None]
HISTORY_LOOKED_AT = 50  # releases read back for the last known good


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
    progression: str | None = None  # the staging-first refusal, or None
    migrations: MigrationPlan | None = None  # the pending D1 migrations and the lint's findings
    rollout: Rollout | None = None
    diff: VersionDiff | None = None  # what ships: live → candidate


def stable_of(deployment: Deployment | None) -> str | None:
    """The version to fall back to: the one alone at 100%, or the larger share of a split."""
    if deployment is None:
        return None
    if deployment.stable_version_id:
        return deployment.stable_version_id
    # A split left behind (by hand, or a release that did not finish): the larger share is
    # what most users see, so it is the one to fall back to.
    return max(deployment.versions, key=lambda s: s.percentage).version_id


def tag_of(versions: Sequence[WorkerVersion], version_id: str | None) -> str | None:
    """The tag (``workers/tag``) of ``version_id`` among ``versions``, or None."""
    return next((v.tag for v in versions if v.id == version_id), None) if version_id else None


class Requests:
    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        rails: RailsRepository,
        edge: EdgeDeployer,
        gatekeeper: Gatekeeper,
        recorder: Recorder,
        timers: TimerRepository,
        planner: MigrationPlanner,
        builds: BuildsReader | None = None,
        hosts: HostFor | None = None,
    ) -> None:
        self.config = config
        self.hosts: HostFor = hosts or (lambda _: None)
        self.builds = builds
        self.repo = repo
        self.rails = rails
        self.edge = edge
        self.gate = gatekeeper
        self.recorder = recorder
        self.timers = timers
        self.planner = planner

    async def _store(
        self, draft: Release, *, ttl: timedelta, auto_reason: str | None = None, **detail: object
    ) -> Release:
        """Store a new release; one that waits for approvals expires when its window closes."""
        release = await self.recorder.store_new(draft, ttl=ttl, auto_reason=auto_reason, **detail)
        if release.expires_at is not None and release.id is not None:
            await self.timers.schedule(EXPIRE, release.expires_at, release.id)
        return release

    async def prepare(self, request: DeployRequest) -> Release:
        """The release a deploy would create, resolved against Cloudflare, not stored."""
        grant = self.gate.grant(request.service, request.environment)
        env = self.config.services[grant.service].environments[grant.environment]
        versions = await self.edge.list_versions(env.script)
        version = resolve_version(request.version, versions, env.script)
        active = await self.edge.active_deployment(env.script)
        rollout = grant.policy.rollout
        strategy = request.strategy or (
            Strategy.GRADUAL if rollout is not None else Strategy.IMMEDIATE
        )
        plan = tuple(rollout.steps) if strategy is Strategy.GRADUAL and rollout else (100,)
        source = await self.source_of(version)
        diff = await self.diff_of(
            grant.service, grant.environment, env.script, version, source, active
        )
        last_good = await self.last_good(grant.service, grant.environment, env.script, active)
        draft = Release(
            service=grant.service,
            environment=grant.environment,
            script=env.script,
            version_id=version.id,
            version_tag=version.tag,
            version_message=version.message,
            stable_version_id=stable_of(active),  # shown until the release starts
            stable_version_tag=tag_of(versions, stable_of(active)),
            requested_by=request.requested_by,
            policy=grant.policy_name,
            kind=Kind.DEPLOY,
            strategy=strategy,
            plan=plan,
            reason=request.reason,
            emergency=request.emergency,
            approvals_required=grant.policy.approvals_required,
            source=source.to_dict(),
            last_good=last_good.to_dict() if last_good is not None else None,
            diff=diff.to_dict(),
        )
        migrations = await self.planner.plan(draft)
        if migrations is not None:
            draft.migrations = migrations.to_dict()
        return draft

    async def last_good(
        self, service: str, environment: str, script: str, active: Deployment | None
    ) -> LastGood | None:
        """The environment's last known good besides what is live, among the versions
        Cloudflare can still deploy."""
        history = await self.repo.history(service, environment, HISTORY_LOOKED_AT)
        deployable = await self.edge.deployable_versions(script)
        return last_good_of(history, deployable, stable_of(active))

    async def diff_of(
        self,
        service: str,
        environment: str,
        script: str,
        candidate: WorkerVersion,
        source: VersionSource,
        active: Deployment | None,
    ) -> VersionDiff:
        """What ships: the live version's detail against the candidate's (Cloudflare), and the
        commits between them (GitHub, when configured). A part that cannot be read is said to
        be unknown; the rest still shows."""
        live_id = stable_of(active)
        try:
            detail = await self.edge.get_version(script, candidate.id)
            live = await self.edge.get_version(script, live_id) if live_id else None
        except EdgeError as exc:
            log.warning("reading the version details of %s failed: %s", candidate.id[:8], exc)
            fallback = None
            if live_id:
                fallback = WorkerVersion(id=live_id)
            return version_diff(fallback, candidate, commits_unknown="not read")
        if live is None or live.id == candidate.id:
            return version_diff(live, detail)
        github = self.config.diff_github(service, environment)
        host = self.hosts(github) if github is not None else None
        if github is None or host is None:
            why = "GitHub is not configured" if github is None else f"{github.token_env} is not set"
            return version_diff(live, detail, commits_unknown=why)
        live_source = await self.source_of(live)
        base = live_source.commit_sha or live.tag
        head = source.commit_sha or candidate.tag
        if not base or not head:
            return version_diff(
                live, detail, commits_unknown="a version's commit is not known (no build, no tag)"
            )
        if base == head:
            return version_diff(live, detail, Comparison("identical", 0, 0, 0))
        try:
            comparison = await host.compare(
                github.repository, base, head, SourceCall(COMPARE_BUDGET)
            )
        except SourceError as exc:
            return version_diff(live, detail, commits_unknown=str(exc))
        return version_diff(live, detail, comparison)

    async def source_of(self, version: WorkerVersion) -> VersionSource:
        """Where the version came from: its Workers Build when there is one (a failing Builds
        API only costs the build's facts), else its annotations."""
        build = None
        if self.builds is not None:
            try:
                build = (await self.builds.version_builds([version.id])).get(version.id)
            except EdgeError as exc:
                log.warning("reading the Workers Build of %s failed: %s", version.id[:8], exc)
        return resolve_source(version, build)

    async def _deploy_facts(self, draft: Release, request: DeployRequest) -> tuple[Ask, Facts]:
        grant = self.gate.grant(draft.service, draft.environment)
        staging = await self.gate.staging_refusal(
            grant, draft.version_id, draft.version_tag, draft.script
        )
        migrations = MigrationPlan.from_dict(draft.migrations)
        env = self.config.services[draft.service].environments[draft.environment]
        facts = await self.gate.facts_for_target(
            grant,
            staging_refusal=staging,
            migrations=migrations,
            destructive=env.migrations.destructive if env.migrations else "refuse",
            migration_refusal=await self.planner.staging_refusal(draft, migrations),
        )
        ask = Ask(
            Action.DEPLOY,
            request.requested_by,
            emergency=request.emergency,
            reason=request.reason,
            version_id=draft.version_id,
        )
        return ask, facts

    async def plan(self, request: DeployRequest) -> Plan:
        draft = await self.prepare(request)
        grant = self.gate.grant(draft.service, draft.environment)
        ask, facts = await self._deploy_facts(draft, request)
        decision = decide(ask, facts)
        staging = await self.gate.staging_refusal(
            grant, draft.version_id, draft.version_tag, draft.script
        )
        if isinstance(decision, NeedsApprovals):
            draft.approvals_required = decision.required
        return Plan(
            release=draft,
            approvers=list(grant.policy.approvers),
            deployers=deployers_of(grant.policy),
            may_deploy=str(decision) if isinstance(decision, Refusal) else None,
            lock=await self.rails.get_lock(draft.service, draft.environment),
            freeze=await self.gate.freeze(draft.environment),
            holder=await self.repo.active_for(draft.service, draft.environment),
            queue_ahead=await self.repo.queued(draft.service, draft.environment),
            progression=str(staging) if staging is not None else None,
            rollout=grant.policy.rollout,
            migrations=MigrationPlan.from_dict(draft.migrations),
            diff=VersionDiff.from_dict(draft.diff),
        )

    async def request_deploy(self, request: DeployRequest) -> Release:
        """Check and store a new release; approved at once when its policy needs no approval
        (the caller then starts it), else it asks for approvals in its thread."""
        draft = await self.prepare(request)
        ask, facts = await self._deploy_facts(draft, request)
        decision = await self.gate.check(
            ask, facts, service=draft.service, environment=draft.environment
        )
        window = facts.freeze
        approvers: tuple[str, ...] = ()
        if isinstance(decision, NeedsApprovals):
            draft.approvals_required = decision.required
            approvers = tuple(dict.fromkeys(a for r in decision.requirements for a in r.approvers))
        else:
            draft.approvals_required = 0
        release = await self._store(
            draft,
            ttl=self.config.policies[draft.policy].approval_ttl,
            auto_reason=f"policy '{draft.policy}' needs no approval",
            freeze_overridden=(
                None
                if window is None
                else f"{window.name} {window.set_by}"
                if window.set_by
                else window.name
            ),
        )
        if release.state is State.AWAITING_APPROVAL:
            await self.recorder.say(
                ApprovalRequested(release, approvers, self.config.slack.command)
            )
        return release

    async def request_rollback(
        self,
        service: str,
        environment: str | None,
        user_id: str,
        to: str | None,
        reason: str | None,
    ) -> tuple[Release | None, Release | None]:
        """``/release rollback``: checks and stores a rollback release. Returns (the new
        rollback release, or None; the release rolling out there that is to be rolled back
        instead, or None)."""
        grant = self.gate.grant(service, environment)
        env = self.config.services[service].environments[grant.environment]
        holder = await self.repo.active_for(service, grant.environment)
        active = await self.edge.active_deployment(env.script)
        versions = await self.edge.list_versions(env.script)
        target: str | None = None
        if to is not None:
            target = resolve_version(to, versions, env.script).id
        elif holder is None:
            found = await self.last_good(service, grant.environment, env.script, active)
            target = found.version_id if found is not None else None
            if target is None:
                target = await self._previous_version(
                    service, grant.environment, env.script, stable_of(active)
                )
        ran = await self.gate.ran_before(grant, env.script)
        facts = await self.gate.facts_for_target(
            grant,
            ran_before=ran,
            live_version=active.stable_version_id if active else None,
            rolling_out=holder,
        )
        ask = Ask(Action.ROLLBACK, user_id, reason=reason, version_id=target)
        decision = await self.gate.check(ask, facts, service=service, environment=grant.environment)
        if holder is not None:
            return None, holder
        assert target is not None
        label = {v.id: v.tag for v in versions}.get(target)
        draft = Release(
            service=service,
            environment=grant.environment,
            script=env.script,
            version_id=target,
            version_tag=label,
            requested_by=user_id,
            policy=grant.policy_name,
            kind=Kind.ROLLBACK,
            strategy=Strategy.IMMEDIATE,
            plan=(100,),
            reason=reason,
            stable_version_id=stable_of(active),
            stable_version_tag=tag_of(versions, stable_of(active)),
            approvals_required=decision.required if isinstance(decision, NeedsApprovals) else 0,
        )
        release = await self._store(
            draft,
            ttl=grant.policy.approval_ttl,
            auto_reason=f"{target[:8]} served 100% of {grant.environment} before; "
            "rollback_without_approval",
        )
        await self.recorder.say(
            RollbackRequested(service, grant.environment, user_id, target, label, reason)
        )
        if release.state is State.AWAITING_APPROVAL:
            await self.recorder.say(
                ApprovalRequested(release, tuple(grant.policy.approvers), self.config.slack.command)
            )
        return release, None

    async def _previous_version(
        self, service: str, environment: str, script: str, live: str | None
    ) -> str:
        """Without a known good: the version at 100% before the last completed release there
        (else before the live deployment), when Cloudflare can still deploy it and a secret
        change alone did not make it."""
        history = await self.repo.history(service, environment, 50)
        before = [p.stable_version_id for p in history if p.state is State.SUCCEEDED]
        deployable = {v.id: v for v in await self.edge.deployable_versions(script)}
        found = first_rollback_target(before, deployable, live)
        if found is None:
            wrangler = previous_stable(await self.edge.list_deployments(script))
            found = first_rollback_target([wrangler], deployable, live)
        if found is None:
            raise NotFound(
                f"no earlier version of {service}/{environment} that Cloudflare can still "
                "deploy was alone at 100% (a version made by a secret change alone does not "
                "count); name one: rollback ... to <version>"
            )
        return found

    async def request_restore(self, release_id: int, user_id: str) -> Release:
        """``/release restore-db``: a release of its own that restores the D1 bookmark taken
        before ``release_id``, under the emergency policy's approvals."""
        source = await self.repo.get(release_id)
        if source is None:
            raise NotFound(f"there is no release R-{release_id}")
        grant = self.gate.grant(source.service, source.environment)
        env = self.config.services[source.service].environments[source.environment]
        if not env.d1_database_id:
            source = source.copy(d1_bookmark=None)
        facts = await self.gate.facts_for_target(grant, release=source)
        decision = await self.gate.check(Ask(Action.RESTORE_DB, user_id), facts, release=source)
        emergency = self.gate.emergency(grant.policy_name)
        draft = Release(
            service=source.service,
            environment=source.environment,
            script=source.script,
            version_id=source.version_id,
            version_tag=source.version_tag,
            requested_by=user_id,
            policy=emergency.policy,
            kind=Kind.RESTORE_DB,
            strategy=Strategy.IMMEDIATE,
            plan=(100,),
            reason=f"restore D1 to the bookmark taken before {source.key}",
            d1_bookmark=source.d1_bookmark,
            approvals_required=decision.required if isinstance(decision, NeedsApprovals) else 0,
        )
        release = await self._store(draft, ttl=self.config.policies[emergency.policy].approval_ttl)
        if release.state is State.AWAITING_APPROVAL:
            await self.recorder.say(
                ApprovalRequested(release, emergency.approvers, self.config.slack.command)
            )
        return release
