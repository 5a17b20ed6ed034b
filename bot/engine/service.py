"""The release use cases, composed: one object per concern, each given only what it needs.

::

    service = ReleaseService(config, repo, edge, notifier, clock, votes=..., timers=...,
                             rails=..., directory=...)
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    await service.start(release.id)

Modules, by what they hold: ``policy`` (the one decision), ``facts`` (the gatekeeper that
reads what the decision needs), ``requests``, ``approvals``, ``controls``, ``rails``,
``driver`` (runs the stages in ``stages/``), ``reverter`` (putting things back),
``recorder`` (the one way a change is stored, audited and told), ``reading``, ``digest``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from bot.config import Config
from bot.engine.approvals import Approvals, Started
from bot.engine.controls import Controls
from bot.engine.digest import DIGEST, SUMMARY, Digests, NextFire, summary_delay
from bot.engine.driver import DEFAULT_LEASE, Driver
from bot.engine.errors import EdgeError, NotFound
from bot.engine.facts import Gatekeeper
from bot.engine.migration_planner import MigrationListing, MigrationPlanner
from bot.engine.model import (
    ADVANCE,
    CHECKS,
    EXPIRE,
    FreezeRecord,
    LockRecord,
    Release,
    Timer,
    Vote,
    WorkerVersion,
)
from bot.engine.notices import Resumed
from bot.engine.ports import (
    READ,
    Analytics,
    Clock,
    D1Migrations,
    Directory,
    EdgeDeployer,
    MigrationLinter,
    MigrationSource,
    Notifier,
    Prober,
    RailsRepository,
    ReleaseRepository,
    TimerRepository,
    VoteRepository,
)
from bot.engine.rails import Rails
from bot.engine.reading import Health, LiveSplit, Reading, TargetStatus
from bot.engine.recorder import Recorder
from bot.engine.requests import DeployRequest, Plan, Requests
from bot.engine.reverter import Reverter, rollback_intent
from bot.engine.source import BuildsReader, VersionBuild
from bot.engine.sources import VersionSource, resolve_source
from bot.engine.stages.admission import Admission
from bot.engine.stages.backup import Backup
from bot.engine.stages.checks import HostFor, PreDeployChecks
from bot.engine.stages.migrate import Migrate
from bot.engine.stages.pipeline import Lifecycle, Pipeline
from bot.engine.stages.preflight import RollbackPreflight
from bot.engine.stages.restore import Restore, RestoreVerify
from bot.engine.stages.smoke import SmokeTest
from bot.engine.stages.traffic import Gate, Shift
from bot.engine.states import State
from bot.logcontext import about_release

TimerHandler = Callable[[Timer], Awaitable[None]]
log = logging.getLogger("releasebot.engine")


class ReleaseService:
    """The façade the Slack listeners, the scheduler and the tests use."""

    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        edge: EdgeDeployer,
        notifier: Notifier,
        clock: Clock,
        *,
        votes: VoteRepository,
        timers: TimerRepository,
        rails: RailsRepository,
        directory: Directory,
        analytics: Analytics | None = None,
        prober: Prober | None = None,
        owner: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
        next_fire: NextFire | None = None,
        hosts: HostFor | None = None,
        builds: BuildsReader | None = None,
        migration_source: MigrationSource | None = None,
        d1: D1Migrations | None = None,
        linter: MigrationLinter | None = None,
    ) -> None:
        """``hosts`` gives the GitHub client for a policy's ``checks.github`` (None: its
        token is not set); ``builds`` reads Workers Builds (the Cloudflare client)."""
        self.config = config
        self.repo = repo
        self.edge = edge
        self.notifier = notifier
        self.clock = clock
        self.votes = votes
        self.timers = timers
        self.rails_repo = rails
        analytics_port: Analytics = analytics if analytics is not None else edge  # type: ignore[assignment]
        # Who holds timer leases: one name per process, so replicas never share a lease.
        self.owner = owner or f"releasebot-{secrets.token_hex(4)}"
        self.recorder = Recorder(repo, notifier, clock, config.slack.release_channel)
        self.gatekeeper = Gatekeeper(config, repo, rails, edge, directory, clock, self.recorder)
        self.planner = MigrationPlanner(config, repo, migration_source, d1, linter)
        self.reverter = Reverter(config, repo, votes, edge, self.recorder, self._ended)
        self.pipeline = _pipeline(
            config,
            repo,
            rails,
            edge,
            analytics_port,
            prober,
            self.recorder,
            self.reverter,
            self,
            Migrate(config, migration_source, d1, self.recorder, self.reverter)
            if migration_source is not None and d1 is not None
            else None,
        )
        self.driver = Driver(
            repo,
            timers,
            edge,
            self.recorder,
            self.reverter,
            self.pipeline,
            owner=self.owner,
            lease=lease,
            summary_delay=lambda r: summary_delay(config, r),
        )
        self.requests = Requests(
            config,
            repo,
            rails,
            edge,
            self.gatekeeper,
            self.recorder,
            timers,
            self.planner,
            builds,
            hosts,
        )
        self.builds = builds
        self.checks = PreDeployChecks(
            config, repo, timers, self.recorder, hosts or (lambda _: None), builds
        )
        self.approvals = Approvals(
            repo, votes, timers, rails, self.gatekeeper, self.recorder, self.driver
        )
        self.controls = Controls(
            repo, edge, self.gatekeeper, self.recorder, self.reverter, self.driver
        )
        self.rails = Rails(rails, self.gatekeeper, self.recorder, self.driver)
        self.reading = Reading(
            config, repo, votes, rails, edge, analytics_port, prober, clock, self.gatekeeper
        )
        self.digests = Digests(
            config, repo, timers, analytics_port, self.reading, self.recorder, next_fire
        )
        self._handlers: dict[str, TimerHandler] = {
            EXPIRE: self._expire_timer,
            SUMMARY: self._summary_timer,
            DIGEST: self.digests.run_digest,
            CHECKS: self._checks_timer,
        }

    # -- the stages' hooks into the driver (set up before the driver exists) -------------

    async def _ended(self, release: Release) -> None:
        await self.driver.ended(release)

    async def at(self, release_id: int, when: datetime) -> None:
        await self.driver.at(release_id, when)

    async def succeeded(self, release: Release) -> None:
        await self.driver.succeeded(release)

    # -- timers -----------------------------------------------------------------------------

    async def run_due(self, limit: int = 20) -> list[Timer]:
        """Claim and run the timers that are due (the scheduler's tick)."""
        claimed = await self.timers.claim_due(
            self.clock.now(), self.owner, self.driver.lease, limit
        )
        for timer in claimed:
            await self.run_timer(timer)
        return claimed

    @about_release
    async def run_timer(self, timer: Timer) -> None:
        """Run one claimed timer; it is completed only when its work is done, so a crash
        leaves it to be claimed again once the lease runs out."""
        if timer.kind == ADVANCE and timer.release_id is not None:
            if not await self.driver.drive_timer(timer):
                return  # claimed again once the other driver is done
        else:
            handler = self._handlers.get(timer.kind)
            if handler is not None:
                await handler(timer)
        await self.timers.complete(timer.id, self.clock.now())

    async def _expire_timer(self, timer: Timer) -> None:
        if timer.release_id is not None:
            await self.approvals.expire(timer.release_id)

    async def _checks_timer(self, timer: Timer) -> None:
        if timer.release_id is not None:
            await self.checks.run(timer.release_id)

    async def _summary_timer(self, timer: Timer) -> None:
        if timer.release_id is not None:
            await self.digests.post_summary(timer.release_id)

    async def resume_unfinished(self) -> list[Release]:
        """After a restart: make sure every release in flight has a timer to drive it; the
        scheduler picks them up (here or on another replica). Returns those rescheduled."""
        rescheduled = []
        for release in await self.repo.unfinished():
            if not release.state.is_active or release.id is None:
                continue
            # A paused release waits for a person, unless a rollback was already decided.
            if release.paused and rollback_intent(release) is None:
                continue
            if not await self.timers.pending(release.id):
                await self.timers.schedule(ADVANCE, self.clock.now(), release.id)
                rescheduled.append(release)
                await self.recorder.say(Resumed(release))
        return rescheduled

    # -- the use cases ----------------------------------------------------------------------

    async def get(self, release_id: int) -> Release:
        return await self.approvals.get(release_id)

    async def kick(self, release_id: int, due: datetime | None = None) -> Release | None:
        return await self.driver.kick(release_id, due)

    async def drive(self, release_id: int) -> None:
        await self.driver.drive(release_id)

    async def start(self, release_id: int) -> Started:
        return await self.approvals.start(release_id)

    async def prepare(self, request: DeployRequest) -> Release:
        return await self.requests.prepare(request)

    async def plan(self, request: DeployRequest) -> Plan:
        return await self.requests.plan(request)

    async def request_deploy(self, request: DeployRequest) -> Release:
        """Request a deploy; one that waits for approval has its pre-deploy checks read."""
        release = await self.requests.request_deploy(request)
        if release.state is State.AWAITING_APPROVAL and release.id is not None:
            release = await self.checks.run(release.id) or release
        return release

    async def deploy(self, request: DeployRequest) -> Started:
        """Request a deploy and, when its policy needs no approval, start it."""
        release = await self.request_deploy(request)
        if release.state is State.APPROVED and release.id is not None:
            return await self.approvals.start(release.id)
        return Started(release)

    async def request_rollback(
        self,
        service: str,
        environment: str | None,
        user_id: str,
        to: str | None,
        reason: str | None,
    ) -> Release | None:
        created, holder = await self.requests.request_rollback(
            service, environment, user_id, to, reason
        )
        if holder is not None:
            return await self.controls.roll_back_by(holder, user_id, reason)
        assert created is not None and created.id is not None
        if created.state is State.APPROVED:
            return (await self.approvals.start(created.id)).release
        return created

    async def request_restore(self, release_id: int, user_id: str) -> Release:
        return await self.requests.request_restore(release_id, user_id)

    async def check_vote(
        self, release: Release, user_id: str, version_id: str | None, what: str
    ) -> list[Vote]:
        return await self.approvals.check_vote(release, user_id, version_id, what)

    async def decide(
        self,
        release_id: int,
        user_id: str,
        approve: bool,
        version_id: str | None = None,
        reason: str | None = None,
    ) -> Release:
        """Vote; an approval that completes the policy starts the release."""
        return (await self.decision(release_id, user_id, approve, version_id, reason)).release

    async def decision(
        self,
        release_id: int,
        user_id: str,
        approve: bool,
        version_id: str | None = None,
        reason: str | None = None,
    ) -> Started:
        return await self.approvals.decide(release_id, user_id, approve, version_id, reason)

    async def cancel(self, release_id: int, user_id: str) -> Release:
        return await self.approvals.cancel(release_id, user_id)

    async def expire(self, release_id: int) -> Release | None:
        return await self.approvals.expire(release_id)

    async def control(self, release_id: int, user_id: str, verb: str) -> Release | None:
        return await self.controls.control(release_id, user_id, verb)

    async def roll_back(self, release: Release, actor: str, why: str) -> Release | None:
        return await self.controls.roll_back(release, actor, why)

    async def lock(self, service: str, environment: str, user_id: str, reason: str | None) -> bool:
        return await self.rails.lock(service, environment, user_id, reason)

    async def unlock(self, service: str, environment: str, user_id: str) -> LockRecord:
        return await self.rails.unlock(service, environment, user_id)

    async def freeze(
        self, environment: str, until: datetime, user_id: str, reason: str | None
    ) -> FreezeRecord:
        return await self.rails.freeze(environment, until, user_id, reason)

    async def unfreeze(self, environment: str, user_id: str) -> int:
        return await self.rails.unfreeze(environment, user_id, self.config.slack.command)

    async def queue_position(self, release: Release) -> tuple[int, Release | None]:
        return await self.driver.queue_position(release)

    # -- reading ----------------------------------------------------------------------------

    async def live(self, service: str, environment: str | None) -> LiveSplit:
        return await self.reading.live(service, environment)

    async def target_status(self, service: str, environment: str | None) -> TargetStatus:
        return await self.reading.target_status(service, environment)

    async def overview(self) -> list[TargetStatus]:
        return await self.reading.overview()

    async def release_history(
        self, service: str, environment: str | None, limit: int
    ) -> tuple[list[tuple[Release, list[Vote]]], bool]:
        return await self.reading.release_history(service, environment, limit)

    async def migrations_of(self, service: str, environment: str | None) -> MigrationListing:
        """``/release migrations``: the database's ``d1_migrations`` and the files it lacks."""
        grant = self.gatekeeper.grant(service, environment)
        if not self.planner.configured(grant.service, grant.environment):
            raise NotFound(
                f"{grant.service}/{grant.environment} has no D1 migrations configured "
                "(services.<svc>.environments.<env>.migrations)"
            )
        env = self.config.services[grant.service].environments[grant.environment]
        live = await self.edge.active_deployment(env.script, READ)
        probe = Release(
            service=grant.service,
            environment=grant.environment,
            script=env.script,
            version_id=(live.stable_version_id or "") if live else "",
            requested_by="",
            policy=grant.policy_name,
        )
        return await self.planner.listing(grant.service, grant.environment, probe)

    async def versions_of(self, service: str, environment: str | None):  # type: ignore[no-untyped-def]
        return await self.reading.versions_of(service, environment)

    async def version_sources(self, versions: Sequence[WorkerVersion]) -> dict[str, VersionSource]:
        """Where each version came from: its Workers Build (read for all of them at once,
        at most 20 ids a call), else its annotations. Builds that cannot be read only cost
        their facts."""
        builds: dict[str, VersionBuild] = {}
        if self.builds is not None and versions:
            try:
                builds = await self.builds.version_builds([v.id for v in versions])
            except EdgeError as exc:
                log.warning("reading Workers Builds failed: %s", exc)
        return {v.id: resolve_source(v, builds.get(v.id)) for v in versions}

    async def health(self, service: str, environment: str | None) -> Health:
        return await self.reading.health(service, environment)

    async def waiting_for(self, user_id: str) -> list[Release]:
        return await self.reading.waiting_for(user_id)

    async def in_flight(self) -> list[Release]:
        return await self.reading.in_flight()

    async def stats(self, service: str | None, days: int):  # type: ignore[no-untyped-def]
        return await self.reading.stats(service, days)

    async def schedule_digests(self, next_fire: NextFire) -> None:
        self.digests.next_fire = next_fire
        await self.digests.schedule_digests(next_fire)

    async def post_summary(self, release_id: int) -> None:
        await self.digests.post_summary(release_id)


def _pipeline(
    config: Config,
    repo: ReleaseRepository,
    rails: RailsRepository,
    edge: EdgeDeployer,
    analytics: Analytics,
    prober: Prober | None,
    recorder: Recorder,
    reverter: Reverter,
    hooks: ReleaseService,
    migrate: Migrate | None,
) -> Pipeline:
    """The stages of each kind of release, in order."""
    admission = Admission(rails, repo)
    shift = Shift(config, edge, recorder, reverter)
    gate = Gate(config, edge, analytics, prober, recorder, reverter, hooks, hooks)
    return Pipeline(
        deploy=Lifecycle(
            preflight=(admission, Backup(config, edge)),
            openings=(
                *((migrate,) if migrate is not None else ()),
                SmokeTest(config, edge, prober, recorder, reverter, hooks),
            ),
            shift=shift,
            gate=gate,
        ),
        rollback=Lifecycle(preflight=(admission, RollbackPreflight(edge)), shift=shift, gate=gate),
        restore_db=Lifecycle(
            preflight=(admission,),
            shift=Restore(config, edge, recorder, reverter),
            gate=RestoreVerify(recorder, hooks),
        ),
    )


__all__ = [
    "DeployRequest",
    "Health",
    "LiveSplit",
    "Plan",
    "ReleaseService",
    "Started",
    "TargetStatus",
]
