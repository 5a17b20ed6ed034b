"""The gatekeeper: reads the facts a decision needs, asks :mod:`bot.engine.policy`, and turns a
refusal into an audited :class:`~bot.engine.errors.Refused`.

It is the only caller of :func:`bot.engine.policy.decide`; every command and button reaches
the policy through :meth:`Gatekeeper.check`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.config import Config
from bot.engine.errors import EdgeError, NotFound
from bot.engine.freezes import FreezeWindow, active_freeze
from bot.engine.model import Deployment, Kind, Release, Vote
from bot.engine.names import did_you_mean, suggest, unknown_service
from bot.engine.policy import (
    Action,
    Allowed,
    Ask,
    Facts,
    Grant,
    NeedsApprovals,
    Refusal,
    decide,
)
from bot.engine.ports import Clock, Directory, EdgeDeployer, RailsRepository, ReleaseRepository
from bot.engine.quorum import Members, Requirement, release_requirements, requirement_of
from bot.engine.recorder import Recorder
from bot.engine.states import State
from bot.engine.words import Code, Words, words

LEDGER_DEPTH = 200  # releases looked through for what ran in an environment


class Gatekeeper:
    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        rails: RailsRepository,
        edge: EdgeDeployer,
        directory: Directory,
        clock: Clock,
        recorder: Recorder,
    ) -> None:
        self.config = config
        self.repo = repo
        self.rails = rails
        self.edge = edge
        self.directory = directory
        self.clock = clock
        self.recorder = recorder

    # -- where ------------------------------------------------------------------------------

    def grant(self, service: str, environment: str | None) -> Grant:
        """The service/environment (the service's first when None) and its policy."""
        if service not in self.config.services:
            raise NotFound(unknown_service(service, self.config.services))
        envs = self.config.services[service].environments
        if environment is not None and environment not in envs:
            raise NotFound(
                f"{service} has no environment '{environment}'"
                f"{did_you_mean(suggest(environment, envs))} (it has: {', '.join(envs)})"
            )
        name, env = self.config.environment(service, environment)
        return Grant(service, name, env.policy, self.config.policies[env.policy])

    def grants_of_environment(self, environment: str) -> tuple[Grant, ...]:
        """Every service that has ``environment`` (freeze and unfreeze apply to all)."""
        found = tuple(
            self.grant(service, environment)
            for service, spec in self.config.services.items()
            if environment in spec.environments
        )
        if not found:
            every = dict.fromkeys(e for s in self.config.services.values() for e in s.environments)
            raise NotFound(
                f"no service has the environment '{environment}'"
                f"{did_you_mean(suggest(environment, every))} (there are: {', '.join(every)})"
            )
        return found

    def emergency(self, env_policy: str) -> Requirement:
        name = self.config.emergency_policy_name(env_policy)
        return requirement_of(name, self.config.policies[name])

    def requirements(self, release: Release) -> tuple[Requirement, ...]:
        env_policy = self.config.services[release.service].environments[release.environment]
        return release_requirements(
            release,
            self.config.policies,
            env_policy.policy,
            self.config.emergency_policy_name(env_policy.policy),
        )

    # -- facts ------------------------------------------------------------------------------

    async def members(self, *lists: Iterable[str] | None) -> Members:
        groups = sorted({i for ids in lists if ids for i in ids if i.startswith("S")})
        return await self.directory.members(groups) if groups else {}

    async def _members_of(
        self, grants: Sequence[Grant], extra: Sequence[Requirement] = ()
    ) -> Members:
        lists: list[Iterable[str] | None] = []
        for grant in grants:
            lists += [grant.policy.deployers, grant.policy.approvers]
        lists += [r.approvers for r in extra]
        return await self.members(*lists)

    async def freeze(self, environment: str) -> FreezeWindow | None:
        manual = await self.rails.freezes(environment)
        return active_freeze(self.config.freezes, manual, environment, self.clock.now())

    async def ran_before(self, grant: Grant, script: str) -> frozenset[str]:
        """Versions that served 100% of the environment before: from the bot's own ledger
        (what its releases deployed and found live) and Cloudflare's deployment history."""
        seen: set[str] = set()
        for past in await self.repo.history(grant.service, grant.environment, LEDGER_DEPTH):
            if past.kind is Kind.RESTORE_DB:
                continue
            if past.state is State.SUCCEEDED:
                seen.add(past.version_id)
            if past.stable_version_id and past.current_step >= 0:
                seen.add(past.stable_version_id)
        try:
            deployments = await self.edge.list_deployments(script)
        except EdgeError:
            deployments = []
        seen.update(v for d in deployments if (v := _alone(d)) is not None)
        return frozenset(seen)

    async def staging_refusal(
        self, grant: Grant, version_id: str, tag: str | None, script: str
    ) -> Words | None:
        """The staging-first rule: what will run here must have succeeded in the environment
        the policy names — the same version, or one of the same tag and the same script
        content (Cloudflare's content hash of the script)."""
        needed = grant.policy.requires_success_in
        services = self.config.services[grant.service].environments
        if not needed or needed == grant.environment or needed not in services:
            return None
        if not tag:
            return words(
                f"{grant.environment} takes only versions whose tag succeeded in {needed} "
                "first, and ",
                Code(version_id[:8]),
                " has no tag",
            )
        there = await self.repo.succeeded_versions_with_tag(grant.service, needed, tag)
        if not there:
            return words(
                f"{tag} has not succeeded in {grant.service}/{needed} yet; release it there first"
            )
        if version_id in there:
            return None
        mine = await self._etag(script, version_id)
        theirs = {await self._etag(services[needed].script, v) for v in there}
        if mine is not None and mine in theirs:
            return None
        return words(
            f"{tag} succeeded in {needed} with different script content than ",
            Code(version_id[:8]),
            f" (the tag was reused); release this version in {needed} first",
        )

    async def _etag(self, script: str, version_id: str) -> str | None:
        try:
            return (await self.edge.get_version(script, version_id)).etag
        except EdgeError:
            return None

    # -- deciding ---------------------------------------------------------------------------

    async def check(
        self,
        ask: Ask,
        facts: Facts,
        *,
        release: Release | None = None,
        service: str | None = None,
        environment: str | None = None,
    ) -> Allowed | NeedsApprovals:
        """The decision; a refusal is audited and raised as ``Refused``."""
        decision = decide(ask, facts)
        if isinstance(decision, Refusal):
            raise await self.recorder.refuse(
                ask.actor,
                ask.action.value,
                decision.reason,
                release,
                service=service,
                environment=environment,
            )
        return decision

    async def facts_for_target(
        self,
        grant: Grant,
        *,
        release: Release | None = None,
        votes: Sequence[Vote] = (),
        emergency: bool = False,
        **more: object,
    ) -> Facts:
        extra = [self.emergency(grant.policy_name)]
        requirements = self.requirements(release) if release is not None else ()
        members = await self._members_of([grant], [*extra, *requirements])
        return Facts(
            grants=(grant,),
            members=members,
            now=self.clock.now(),
            freeze=await self.freeze(grant.environment),
            lock=await self.rails.get_lock(grant.service, grant.environment),
            release=release,
            votes=tuple(votes),
            emergency=extra[0],
            emergency_policy=extra[0].policy,
            requirements=requirements,
            **more,  # type: ignore[arg-type]
        )

    async def check_release(
        self,
        action: Action,
        actor: str,
        release: Release,
        votes: Sequence[Vote] = (),
        version_id: str | None = None,
    ) -> Allowed | NeedsApprovals:
        """A decision about an existing release (controls, votes, cancel)."""
        grant = self.grant(release.service, release.environment)
        facts = await self.facts_for_target(grant, release=release, votes=votes)
        return await self.check(Ask(action, actor, version_id=version_id), facts, release=release)

    async def check_rails(
        self, action: Action, actor: str, service: str | None, environment: str
    ) -> None:
        grants = (
            (self.grant(service, environment),)
            if service is not None
            else self.grants_of_environment(environment)
        )
        members = await self._members_of(grants)
        facts = Facts(grants=grants, members=members, now=self.clock.now())
        await self.check(Ask(action, actor), facts, service=service, environment=environment)


def _alone(deployment: Deployment) -> str | None:
    for share in deployment.versions:
        if share.percentage >= 100:
            return share.version_id
    return None
