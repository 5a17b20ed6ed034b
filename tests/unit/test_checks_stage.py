"""The pre-deploy checks stage on fake ports: re-reads until settled, bounded; rate limits
waited out durably; a missing token; a break-glass deploy skipping them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import GitHubSource, parse_config
from bot.engine.errors import EdgeUnavailable, Refused, SourceUnavailable
from bot.engine.model import CHECKS, VersionShare
from bot.engine.service import DeployRequest, ReleaseService
from bot.engine.source import (
    CheckResult,
    CheckState,
    Comparison,
    PullRequest,
    RepoEntry,
    RepoFile,
    Review,
    SourceCall,
    VersionBuild,
)
from bot.engine.states import State
from tests.fakes import (
    FakeClock,
    FakeDirectory,
    FakeEdge,
    FakeRails,
    FakeReleaseRepository,
    FakeTimers,
    FakeVotes,
    RecordingNotifier,
)

START = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # a Wednesday


def config(freeze: bool = False) -> Any:
    data: dict[str, Any] = {
        "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
        "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
        "policies": {
            "production": {
                "approvals_required": 1,
                "approvers": ["U0ALICE"],
                "deployers": ["U0CAROL", "U0ALICE"],
                "checks": {
                    "github": {"repository": "o/r", "token_env": "GH"},
                    "required": ["ci"],
                    "review": "approved",
                    "poll": "10s",
                    "settle_within": "1m",
                },
            }
        },
        "services": {
            "api": {"environments": {"production": {"script": "api", "policy": "production"}}}
        },
    }
    if freeze:
        data["freezes"] = [
            {
                "name": "audit",
                "environments": ["production"],
                "start": "2026-12-01T00:00:00Z",
                "end": "2026-12-09T00:00:00Z",
            }
        ]
    return parse_config(data)


class Host:
    """GitHub as the stage sees it: ``ci`` in whatever state the test sets."""

    def __init__(self) -> None:
        self.ci = CheckState.PENDING
        self.trouble: Exception | None = None
        self.reads = 0

    async def check_runs(
        self, repository: str, ref: str, call: SourceCall | None = None
    ) -> list[CheckResult]:
        self.reads += 1
        if self.trouble is not None:
            raise self.trouble
        return [CheckResult("ci", self.ci, "https://ci/1", self.ci.value)]

    async def statuses(
        self, repository: str, ref: str, call: SourceCall | None = None
    ) -> list[CheckResult]:
        return []

    async def pulls_for_commit(
        self, repository: str, sha: str, call: SourceCall | None = None
    ) -> list[PullRequest]:
        return [PullRequest(7, "https://pr/7", "t", "ana")]

    async def reviews(
        self, repository: str, number: int, call: SourceCall | None = None
    ) -> list[Review]:
        return [Review("ben", "APPROVED")]

    async def compare(
        self, repository: str, base: str, head: str, call: SourceCall | None = None
    ) -> Comparison:
        raise SourceUnavailable("this fake GitHub compares nothing")

    async def file(
        self, repository: str, path: str, ref: str, call: SourceCall | None = None
    ) -> RepoFile | None:
        return None

    async def folder(
        self, repository: str, path: str, ref: str, call: SourceCall | None = None
    ) -> list[RepoEntry] | None:
        return None


class Builds:
    def __init__(self, edge: FakeEdge) -> None:
        self.edge = edge
        self.down = 0  # how many calls fail first (the Builds API answering 503)
        self.calls = 0

    async def version_builds(self, version_ids: Sequence[str]) -> dict[str, VersionBuild]:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise EdgeUnavailable("Cloudflare answered 503 while reading builds")
        return {v: VersionBuild(v, "abc123", "main", "o/r", "success") for v in version_ids}


@pytest.fixture
def world() -> tuple[ReleaseService, FakeTimers, FakeClock, Host, FakeReleaseRepository]:
    return build(config())


def build(cfg: Any, host: Host | None = None, tokens: bool = True, builds: Builds | None = None):  # type: ignore[no-untyped-def]
    edge = FakeEdge()
    old = edge.add_version("api", "v1")
    edge.add_version("api", "v2")
    edge.put_live("api", VersionShare(old, 100))
    repo, timers, clock, host = (
        FakeReleaseRepository(),
        FakeTimers(),
        FakeClock(START),
        host or Host(),
    )

    def hosts(_: GitHubSource) -> Host | None:
        return host if tokens else None

    service = ReleaseService(
        cfg,
        repo,
        edge,
        RecordingNotifier(),
        clock,
        votes=FakeVotes(repo),
        timers=timers,
        rails=FakeRails(repo),
        directory=FakeDirectory({}),
        hosts=hosts,
        builds=builds or Builds(edge),
    )
    return service, timers, clock, host, repo


def checks_timers(timers: FakeTimers) -> list[datetime]:
    return sorted(t.due_at for t in timers.rows.values() if t.kind == CHECKS)


async def test_pending_is_read_again_until_green_then_approve_works(world) -> None:  # type: ignore[no-untyped-def]
    service, timers, clock, host, repo = world
    release = await service.request_deploy(DeployRequest("api", "v2", "U0CAROL", "production"))
    assert release.source["commit_sha"] == "abc123" and release.source["origin"] == "build"
    assert release.checks["verdict"] == "pending"
    assert checks_timers(timers) == [START + timedelta(seconds=10)]
    with pytest.raises(Refused, match=r"not all green yet: ci \(pending\)"):
        await service.decide(release.id, "U0ALICE", approve=True)

    host.ci = CheckState.SUCCESS
    clock.advance(10)
    await service.run_due()
    assert (await repo.get(release.id)).checks["verdict"] == "passed"
    decided = await service.decide(release.id, "U0ALICE", approve=True)
    assert decided.state is not State.AWAITING_APPROVAL
    assert [e.action for e in repo.audit].count("checks.read") == 2


async def test_still_pending_after_settle_within_counts_as_failed(world) -> None:  # type: ignore[no-untyped-def]
    service, _, clock, host, repo = world
    release = await service.request_deploy(DeployRequest("api", "v2", "U0CAROL", "production"))
    for _ in range(6):
        clock.advance(10)
        await service.run_due()
    stored = await repo.get(release.id)
    assert stored.checks["verdict"] == "failed" and stored.checks["gave_up"]
    assert "did not settle in time" in stored.checks["items"][0]["detail"]
    assert host.reads == 7
    clock.advance(60)
    await service.run_due()
    assert host.reads == 7  # no more reads once it gave up


async def test_a_rate_limit_schedules_the_next_read_when_it_lifts(world) -> None:  # type: ignore[no-untyped-def]
    service, timers, _, host, _ = world
    lifts = START + timedelta(seconds=45)
    host.trouble = SourceUnavailable("rate limited", rate_limited=True, until=lifts.timestamp())
    release = await service.request_deploy(DeployRequest("api", "v2", "U0CAROL", "production"))
    assert release.checks["waiting_until"] == lifts.isoformat()
    assert checks_timers(timers) == [lifts]


async def test_without_its_token_the_checks_fail_and_say_why() -> None:
    service, timers, _, _, _ = build(config(), tokens=False)
    release = await service.request_deploy(DeployRequest("api", "v2", "U0CAROL", "production"))
    assert release.checks["verdict"] == "failed" and release.checks["error"] == "GH is not set"
    assert checks_timers(timers) == []
    with pytest.raises(Refused, match="could not be read"):
        await service.decide(release.id, "U0ALICE", approve=True)


async def test_a_break_glass_deploy_skips_them_on_the_record() -> None:
    service, _, _, host, repo = build(config(freeze=True))
    release = await service.request_deploy(
        DeployRequest("api", "v2", "U0CAROL", "production", reason="fix", emergency=True)
    )
    assert release.checks["skipped"] == "break-glass deploy during a freeze"
    assert host.reads == 0
    skipped = [e for e in repo.audit if e.action == "checks.skipped"]
    assert len(skipped) == 1 and skipped[0].detail["reason"] == release.checks["skipped"]
    decided = await service.decide(release.id, "U0ALICE", approve=True)
    assert decided.state is not State.AWAITING_APPROVAL


async def test_a_builds_api_down_at_the_request_is_read_again_and_heals() -> None:
    """The Workers Builds API fails while the deploy is asked for and at the first read:
    the checks wait (pending, read again) instead of failing the version as unbuilt, and
    once the build can be read the release gets its commit and its checklist."""
    builds = Builds(FakeEdge())
    builds.down = 3  # the request's source lookups (candidate and live) and the first checks read
    host = Host()
    host.ci = CheckState.SUCCESS
    service, timers, clock, host, repo = build(config(), host=host, builds=builds)
    release = await service.request_deploy(DeployRequest("api", "v2", "U0CAROL", "production"))
    assert release.source["origin"] == "annotations"
    assert release.checks["verdict"] == "pending"
    assert "Workers Build could not be read" in release.checks["error"]
    assert checks_timers(timers) == [START + timedelta(seconds=10)]
    with pytest.raises(Refused):
        await service.decide(release.id, "U0ALICE", approve=True)

    clock.advance(10)
    await service.run_due()
    stored = await repo.get(release.id)
    assert stored.source["origin"] == "build" and stored.source["commit_sha"] == "abc123"
    assert stored.checks["verdict"] == "passed" and stored.checks["commit_sha"] == "abc123"
    decided = await service.decide(release.id, "U0ALICE", approve=True)
    assert decided.state is not State.AWAITING_APPROVAL
