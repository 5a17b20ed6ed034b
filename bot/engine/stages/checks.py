"""The pre-deploy checks stage: runs while a release waits for approval, before anyone can
approve it.

It reads, for the commit the version was built from, the check runs and commit statuses, the
pull request and its reviews (GitHub), and the Workers Build; stores the checklist on the
release with one ``checks.read`` audit record whenever it changes (the card shows it); and,
while any is not green, reads again every ``poll`` (a pending check settles, a failed one may
be re-run) — for at most ``settle_within`` after the first read, after which what is still
pending counts as failed.
GitHub's rate limits are waited out: inside one read when GitHub asks for a short wait, else
by reading again when the limit lifts; the card says until when. A break-glass deploy during
a freeze skips them (``emergency: skip``), recorded as ``checks.skipped``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.config import Checks as ChecksSpec
from bot.config import Config, GitHubSource
from bot.engine.checks import FAILED, PENDING, ChecksReport, Readings, evaluate, unsourced
from bot.engine.errors import EdgeError, EdgeUnavailable, SourceError, SourceUnavailable
from bot.engine.model import CHECKS, Release, WorkerVersion
from bot.engine.notices import SourceBusy
from bot.engine.ports import ReleaseRepository, TimerRepository
from bot.engine.recorder import BOT_ACTOR, Recorder
from bot.engine.source import (
    Allowance,
    BuildsReader,
    CheckResult,
    CodeHost,
    PullRequest,
    Review,
    SourceBusyListener,
    SourceCall,
    VersionBuild,
)
from bot.engine.sources import VersionSource, resolve_source
from bot.engine.states import State

log = logging.getLogger("releasebot.engine.checks")

# How long one read may wait for GitHub (its own short rate-limit waits included); a longer
# wait is taken as a new read when the limit lifts.
READ_BUDGET = 60.0

HostFor = Callable[[GitHubSource], CodeHost | None]


class PreDeployChecks:
    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        timers: TimerRepository,
        recorder: Recorder,
        hosts: HostFor,
        builds: BuildsReader | None,
    ) -> None:
        self.config = config
        self.repo = repo
        self.timers = timers
        self.recorder = recorder
        self.hosts = hosts
        self.builds = builds
        self.clock = recorder.clock

    def spec(self, release: Release) -> ChecksSpec | None:
        policy = self.config.policies.get(release.policy)
        return policy.checks if policy is not None else None

    async def run(self, release_id: int) -> Release | None:
        """Read the checks of a release awaiting approval once; schedule the next read while
        some are pending. Returns the release as stored after."""
        release = await self.repo.get(release_id)
        if release is None or release.state is not State.AWAITING_APPROVAL:
            return release
        spec = self.spec(release)
        if spec is None:
            return release
        previous = ChecksReport.from_dict(release.checks)
        now = self.clock.now()
        if release.emergency and spec.emergency == "skip":
            if previous is not None and previous.skipped:
                return release
            report = ChecksReport((), now, now, skipped="break-glass deploy during a freeze")
            entry = self.recorder.entry(release, BOT_ACTOR, "checks.skipped", reason=report.skipped)
            return await self.recorder.save(release.copy(checks=report.to_dict()), [entry])
        release, resolved, trouble = await self._with_build(release)
        report = await self._read(release, spec, previous, now, trouble)
        late = now - report.started_at >= spec.settle_within
        if report.verdict == PENDING and late:
            report = report.settled_by_time()
        if resolved or not report.same_as(previous):
            entry = self.recorder.entry(
                release,
                BOT_ACTOR,
                "checks.read",
                verdict=report.verdict,
                commit_sha=report.commit_sha,
                checks={i.name: i.state.value for i in report.items},
                error=report.error,
                waiting_until=report.waiting_until.isoformat() if report.waiting_until else None,
            )
            release = await self.recorder.save(release.copy(checks=report.to_dict()), [entry])
        # Pending ones until they settle; failed ones too (a re-run may turn them green),
        # until settle_within. A wrong token or repository is not read again.
        again = report.verdict in (PENDING, FAILED) and not late and not report.gave_up
        if again and release.id is not None:
            due = now + spec.poll
            if report.waiting_until is not None and report.waiting_until > due:
                due = report.waiting_until
            await self.timers.schedule(CHECKS, due, release.id)
        return release

    async def _with_build(self, release: Release) -> tuple[Release, bool, str | None]:
        """The release with its Workers Build's facts, when the request could not read them
        (the Builds API failed then) and they can be read now: (the release, whether they
        were found, why the Builds API could not be read)."""
        source = VersionSource.from_dict(release.source)
        if self.builds is None or (source is not None and source.commit_sha):
            return release, False, None
        try:
            build = (await self.builds.version_builds([release.version_id])).get(release.version_id)
        except EdgeError as exc:
            log.info("%s: its Workers Build is still not readable: %s", release.key, exc)
            return release, False, f"its Workers Build could not be read: {exc}"
        if build is None or not build.commit_sha:
            return release, False, None
        version = WorkerVersion(
            release.version_id,
            tag=source.tag if source else release.version_tag,
            message=source.message if source else None,
            triggered_by=source.triggered_by if source else None,
        )
        return release.copy(source=resolve_source(version, build).to_dict()), True, None

    async def _read(
        self,
        release: Release,
        spec: ChecksSpec,
        previous: ChecksReport | None,
        now: datetime,
        builds_trouble: str | None = None,
    ) -> ChecksReport:
        started = previous.started_at if previous is not None else now
        source = VersionSource.from_dict(release.source)
        sha = source.commit_sha if source is not None else None
        repository = self.repository(release, spec)
        if not sha and builds_trouble is not None:  # read again later: it may be a build
            kept = previous.items if previous is not None else ()
            return ChecksReport(kept, now, started, repository=repository, error=builds_trouble)
        if not sha:
            why = "the version was not made by Workers Builds, so its commit is not known"
            return ChecksReport(unsourced(spec, why), now, started, repository=repository)
        built_in = source.repository if source is not None else None
        if built_in and built_in.lower() != repository.lower():
            why = f"the version was built from {built_in}, not {repository}"
            return ChecksReport(unsourced(spec, why), now, started, sha, repository, gave_up=True)
        host = self.hosts(spec.github)
        if host is None:
            return ChecksReport(
                (),
                now,
                started,
                sha,
                repository,
                error=f"{spec.github.token_env} is not set",
                gave_up=True,
            )
        # one allowance for the whole read: every call and page draws on it
        call = SourceCall(READ_BUDGET, self._busy(release), Allowance(READ_BUDGET))
        try:
            readings = await self._readings(host, spec, repository, sha, release, call)
        except (SourceUnavailable, EdgeUnavailable) as exc:
            # GitHub or the Workers Builds API is down or limiting: read again later
            log.warning("%s: reading checks failed: %s", release.key, exc)
            lifts = exc.until if isinstance(exc, SourceUnavailable) else None
            until = datetime.fromtimestamp(lifts, now.tzinfo) if lifts else None
            kept = previous.items if previous is not None else ()
            return ChecksReport(
                kept, now, started, sha, repository, error=str(exc), waiting_until=until
            )
        except (SourceError, EdgeError) as exc:  # a wrong token, no repository: it will not heal
            return ChecksReport((), now, started, sha, repository, error=str(exc), gave_up=True)
        return ChecksReport(evaluate(spec, readings), now, started, sha, repository)

    def repository(self, release: Release, spec: ChecksSpec) -> str:
        """The environment's own repository, else the policy's."""
        service = self.config.services.get(release.service)
        env = service.environments.get(release.environment) if service else None
        return (env.repository if env is not None else None) or spec.github.repository

    async def _readings(
        self,
        host: CodeHost,
        spec: ChecksSpec,
        repository: str,
        sha: str,
        release: Release,
        call: SourceCall,
    ) -> Readings:
        runs: tuple[CheckResult, ...] = ()
        statuses: tuple[CheckResult, ...] = ()
        if spec.required:
            runs = tuple(await host.check_runs(repository, sha, call))
            statuses = tuple(await host.statuses(repository, sha, call))
        pulls: tuple[PullRequest, ...] = ()
        reviews: dict[int, tuple[Review, ...]] = {}
        if spec.review:
            pulls = tuple(await host.pulls_for_commit(repository, sha, call))
            for pull in pulls:
                reviews[pull.number] = tuple(await host.reviews(repository, pull.number, call))
        build = None
        if spec.builds:
            build = await self._build(release)
        return Readings(runs, statuses, pulls, dict(reviews), build)

    async def _build(self, release: Release) -> VersionBuild | None:
        source = VersionSource.from_dict(release.source)
        if self.builds is not None:
            found = await self.builds.version_builds([release.version_id])
            if release.version_id in found:
                return found[release.version_id]
        if source is None or not source.from_build:
            return None
        return VersionBuild(
            release.version_id,
            source.commit_sha,
            source.branch,
            source.repository,
            source.build_outcome,
        )

    def _busy(self, release: Release) -> SourceBusyListener:
        async def busy(until: datetime | None) -> None:
            if until is not None:
                log.info("%s: GitHub asks its checks to wait until %s", release.key, until)
            await self.recorder.say(SourceBusy(release, until))

        return busy
