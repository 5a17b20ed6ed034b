"""Answers to questions: what is live, what happened, is it healthy. Nothing changes here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.config import Config, Environment
from bot.engine.errors import ReleaseError
from bot.engine.facts import Gatekeeper
from bot.engine.freezes import FreezeWindow
from bot.engine.model import (
    Deployment,
    Kind,
    LockRecord,
    Release,
    VersionMetrics,
    Vote,
    WorkerVersion,
)
from bot.engine.ports import (
    READ,
    Analytics,
    Clock,
    EdgeDeployer,
    Prober,
    RailsRepository,
    ReleaseRepository,
    VoteRepository,
)
from bot.engine.quorum import listed
from bot.engine.states import State
from bot.engine.stats import Stats, compute_stats

HEALTH_WINDOW = timedelta(hours=1)
LIVE_TTL = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class LiveSplit:
    """What Cloudflare serves now for one service/environment."""

    service: str
    environment: str
    script: str
    deployment: Deployment | None
    versions: dict[str, WorkerVersion]


@dataclass(slots=True)
class TargetStatus:
    service: str
    environment: str
    live: LiveSplit | None
    error: str | None = None
    inflight: Release | None = None
    waiting: list[Release] = field(default_factory=list)
    lock: LockRecord | None = None
    freeze: FreezeWindow | None = None
    last: Release | None = None  # the last release that ended here
    votes: list[Vote] = field(default_factory=list)  # on the release awaiting approval, if any
    pending: Release | None = None  # awaiting approval
    deployed: Release | None = None  # the release that made the live deployment, if the bot did
    restored: Release | None = None  # the newest D1 restore that succeeded here


@dataclass(slots=True)
class Health:
    live: LiveSplit
    window: timedelta
    metrics: dict[str, VersionMetrics]
    metrics_error: str | None
    probe: tuple[bool, int | None, str] | None


class Reading:
    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        votes: VoteRepository,
        rails: RailsRepository,
        edge: EdgeDeployer,
        analytics: Analytics,
        prober: Prober | None,
        clock: Clock,
        gatekeeper: Gatekeeper,
    ) -> None:
        self.config = config
        self.repo = repo
        self.votes = votes
        self.rails = rails
        self.edge = edge
        self.analytics = analytics
        self.prober = prober
        self.clock = clock
        self.gate = gatekeeper
        self._live: dict[str, tuple[datetime, LiveSplit]] = {}

    def _environment(self, service: str, environment: str | None) -> tuple[str, Environment]:
        grant = self.gate.grant(service, environment)
        return grant.environment, self.config.services[service].environments[grant.environment]

    async def live(self, service: str, environment: str | None) -> LiveSplit:
        """The live split. A burst of questions about one environment costs Cloudflare one
        read every ``LIVE_TTL`` (its API allows 1,200 requests in 5 minutes); while a release
        changes traffic there, every question reads again — as a read, which the edge may
        answer from a copy a moment old and shares with everyone asking at once."""
        env_name, env = self._environment(service, environment)
        now = self.clock.now()
        cache = self._live
        cached = cache.get(env.script)
        fresh_enough = cached is not None and now - cached[0] < LIVE_TTL
        if fresh_enough and await self.repo.active_for(service, env_name) is None:
            assert cached is not None
            return cached[1]
        deployment = await self.edge.active_deployment(env.script, READ)
        versions: dict[str, WorkerVersion] = {}
        if deployment is not None:
            listed = {v.id: v for v in await self.edge.list_versions(env.script, READ)}
            for share in deployment.versions:
                if share.version_id in listed:
                    versions[share.version_id] = listed[share.version_id]
        live = LiveSplit(service, env_name, env.script, deployment, versions)
        cache[env.script] = (now, live)
        return live

    def targets(self) -> list[tuple[str, str]]:
        return [(s, e) for s, spec in self.config.services.items() for e in spec.environments]

    async def target_status(self, service: str, environment: str | None) -> TargetStatus:
        env_name, _ = self._environment(service, environment)
        status = TargetStatus(service, env_name, None)
        try:
            status.live = await self.live(service, env_name)
        except ReleaseError as exc:
            status.error = str(exc)
        status.inflight = await self.repo.active_for(service, env_name)
        status.waiting = await self.repo.queued(service, env_name)
        status.lock = await self.rails.get_lock(service, env_name)
        status.freeze = await self.gate.freeze(env_name)
        for past in await self.repo.history(service, env_name, 20):
            if past.state.is_terminal and status.last is None and past.steps:
                status.last = past
            if past.state.value == "awaiting_approval" and status.pending is None:
                status.pending = past
            live = status.live.deployment if status.live else None
            if (
                status.deployed is None
                and live is not None
                and any(step.deployment_id == live.id for step in past.steps)
            ):
                status.deployed = past
            if (
                status.restored is None
                and past.kind is Kind.RESTORE_DB
                and past.state is State.SUCCEEDED
            ):
                status.restored = past
        if status.pending is not None and status.pending.id is not None:
            status.votes = await self.votes.votes(status.pending.id)
        return status

    async def overview(self) -> list[TargetStatus]:
        return list(await asyncio.gather(*(self.target_status(s, e) for s, e in self.targets())))

    async def release_history(
        self, service: str, environment: str | None, limit: int
    ) -> tuple[list[tuple[Release, list[Vote]]], bool]:
        """Releases newest first with their votes, and whether older ones exist."""
        if service not in self.config.services:
            self._environment(service, None)
        if environment is not None:
            self._environment(service, environment)
        rows = await self.repo.history(service, environment, limit + 1)
        more = len(rows) > limit
        shown = rows[:limit]
        votes = await self.votes.votes_many([r.id for r in shown if r.id is not None])
        return [(r, votes.get(r.id or 0, [])) for r in shown], more

    async def versions_of(
        self, service: str, environment: str | None
    ) -> tuple[str, list[WorkerVersion], Deployment | None]:
        env_name, env = self._environment(service, environment)
        versions, active = await asyncio.gather(
            self.edge.list_versions(env.script, READ),
            self.edge.active_deployment(env.script, READ),
        )
        return env_name, versions, active

    async def health(self, service: str, environment: str | None) -> Health:
        live = await self.live(service, environment)
        env = self.config.services[service].environments[live.environment]
        now = self.clock.now()
        metrics: dict[str, VersionMetrics] = {}
        error = None
        try:
            metrics = await self.analytics.version_metrics(
                live.script, now - HEALTH_WINDOW, now, READ
            )
        except ReleaseError as exc:
            error = str(exc)
        probe = None
        if env.health_url and self.prober is not None:
            probe = await self.prober.health_probe(env.health_url)
        return Health(live, HEALTH_WINDOW, metrics, error, probe)

    async def waiting_for(self, user_id: str) -> list[Release]:
        """Releases awaiting approval that ``user_id`` may approve and has not decided on."""
        found = []
        for release in await self.repo.unfinished():
            if release.state.value != "awaiting_approval" or release.id is None:
                continue
            requirements = self.gate.requirements(release)
            approvers = [a for r in requirements for a in r.approvers]
            members = await self.gate.members(approvers)
            if not listed(user_id, approvers, members):
                continue
            self_ok = all(r.allow_self_approval for r in requirements)
            if user_id == release.requested_by and not self_ok:
                continue
            if any(v.user_id == user_id for v in await self.votes.votes(release.id)):
                continue
            found.append(release)
        return found

    async def in_flight(self) -> list[Release]:
        return [r for r in await self.repo.unfinished() if r.state.is_active]

    async def stats(self, service: str | None, days: int) -> Stats:
        """DORA numbers from the stored releases (and version upload times from Cloudflare)."""
        if service is not None:
            self._environment(service, None)
        releases = await self.repo.history(service, None, 5000)
        uploaded: dict[str, datetime] = {}
        scripts = {
            (r.service, r.environment, r.script) for r in releases if r.kind.value == "deploy"
        }
        for _, _, script in scripts:
            try:
                for v in await self.edge.list_versions(script, READ):
                    if v.created_on is not None:
                        uploaded[v.id] = v.created_on
            except ReleaseError:
                continue  # lead time is unknown for that script; the rest still counts
        return compute_stats(releases, uploaded, self.clock.now(), days)
