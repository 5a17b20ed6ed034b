"""The smoke test with fake ports: the new version joins the deployment at 0% before it is
probed with the override, and only then does traffic move; a failure takes it out again."""

from __future__ import annotations

from typing import Any

from bot.config import parse_config
from bot.engine.errors import EdgeRejected
from bot.engine.model import ProbeAnswer, Release, VersionShare
from bot.engine.notices import SmokeUnconfirmed, StoppedBeforeTraffic
from bot.engine.ports import EdgeCall
from bot.engine.service import DeployRequest, ReleaseService
from bot.engine.smoke import SMOKE_RETRY, SMOKE_TRIES, SmokeRecord
from bot.engine.states import State
from bot.engine.timeline import build_timeline
from bot.slack.blocks.card import release_card
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

SCRIPT = "tax-api-staging"


def config(**env: Any) -> dict[str, Any]:
    staging = {
        "script": SCRIPT,
        "policy": "staging",
        "health_url": "https://tax-api-staging.example.workers.dev/healthz",
        "version_header": "X-Worker-Version",
        **env,
    }
    return {
        "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
        "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
        "policies": {"staging": {"approvals_required": 0}},
        "services": {"tax-api": {"environments": {"staging": staging}}},
    }


class World:
    def __init__(self, **env: Any) -> None:
        self.edge = FakeEdge()
        self.stable = self.edge.add_version(SCRIPT, "v1.4.1")
        self.new = self.edge.add_version(SCRIPT, "v1.4.2")
        self.edge.put_live(SCRIPT, VersionShare(self.stable, 100))
        self.repo = FakeReleaseRepository()
        self.notifier = RecordingNotifier()
        self.clock = FakeClock()
        self.service = ReleaseService(
            parse_config(config(**env)),
            self.repo,
            self.edge,
            self.notifier,
            self.clock,
            votes=FakeVotes(self.repo),
            timers=FakeTimers(),
            rails=FakeRails(self.repo),
            directory=FakeDirectory({}),
            prober=self.edge,
        )

    async def deploy(self) -> Release:
        release = await self.service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
        assert release.id is not None
        final = await self.service.kick(release.id)
        assert final is not None
        return final

    async def wait(self, release: Release) -> Release:
        """Let the smoke test's retry time pass and run what is due."""
        self.clock.advance(SMOKE_RETRY.total_seconds())
        await self.service.run_due()
        assert release.id is not None
        found = await self.repo.get(release.id)
        assert found is not None
        return found

    def splits(self) -> list[tuple[VersionShare, ...]]:
        return [split for _, split in self.edge.deploy_calls]

    def actions(self) -> list[str]:
        return [e.action for e in self.repo.audit]


def card_text(release: Release) -> str:
    return str(release_card(release)[1])


async def test_the_new_version_is_deployed_at_0_percent_probed_then_given_traffic() -> None:
    world = World()

    final = await world.deploy()

    assert final.state is State.SUCCEEDED, final.outcome
    assert world.splits() == [
        (VersionShare(world.new, 0.0), VersionShare(world.stable, 100.0)),
        (VersionShare(world.new, 100),),
    ]
    # the smoke probe asked for the new version; the final probe is unpinned
    assert world.edge.probes[0] == (
        "https://tax-api-staging.example.workers.dev/healthz",
        (SCRIPT, world.new),
    )
    actions = world.actions()
    assert actions.index("release.started") < actions.index("smoke.deployed")
    assert actions.index("smoke.deployed") < actions.index("smoke.passed")
    assert actions.index("smoke.passed") < actions.index("release.step_deployed")
    deployed = next(e for e in world.repo.audit if e.action == "smoke.deployed")
    assert deployed.detail["split"] == {world.new: 0.0, world.stable: 100.0}
    passed = next(e for e in world.repo.audit if e.action == "smoke.passed")
    assert passed.detail["confirmed"] is True and passed.detail["answered_by"] == world.new
    record = SmokeRecord.of(final.steps[0])
    assert record.outcome == "confirmed" and record.share == 0.0
    assert "answered its health check at 0%" in card_text(final)


async def test_a_failing_health_check_takes_the_new_version_out_before_any_traffic() -> None:
    world = World()
    world.edge.probe_ok = [False] * SMOKE_TRIES

    release = await world.deploy()
    for _ in range(SMOKE_TRIES - 1):
        assert release.state is State.DEPLOYING
        release = await world.wait(release)

    assert release.state is State.FAILED
    assert release.outcome is not None and "smoke test failed before any traffic" in release.outcome
    # no share above 0% ever: the 0% deployment, then the stable version alone again
    assert world.splits() == [
        (VersionShare(world.new, 0.0), VersionShare(world.stable, 100.0)),
        (VersionShare(world.stable, 100),),
    ]
    assert len(world.edge.probes) == SMOKE_TRIES
    assert "smoke.failed" in world.actions() and "release.step_deployed" not in world.actions()
    assert any(isinstance(n, StoppedBeforeTraffic) for n in world.notifier.notices)
    assert ":x: *Smoke test:* failed" in card_text(release)
    timeline = build_timeline(release, world.repo.audit)
    assert "smoke test: v1.4.2" in timeline and "in the deployment at 0%" in timeline
    assert "smoke test failed (smoke test failed before any traffic" in timeline


async def test_a_worker_that_does_not_say_its_version_passes_unconfirmed() -> None:
    world = World()
    world.edge.reports_version = False

    final = await world.deploy()

    assert final.state is State.SUCCEEDED
    [notice] = [n for n in world.notifier.notices if isinstance(n, SmokeUnconfirmed)]
    assert "X-Worker-Version" in notice.detail
    assert "could not confirm the version" in card_text(final)
    passed = next(e for e in world.repo.audit if e.action == "smoke.passed")
    assert passed.detail["confirmed"] is False


async def test_without_a_place_to_read_the_version_the_card_says_so() -> None:
    world = World(version_header=None)

    final = await world.deploy()

    assert "could not confirm the version" in card_text(final)
    assert "names no version_header or version_field" in card_text(final)


async def test_an_answer_from_another_version_is_not_a_pass() -> None:
    """Cloudflare routes the override elsewhere (e.g. the new deployment is not applied yet):
    the stable version answering proves nothing about the new one."""
    world = World()
    original = world.edge.version_probe

    async def stable_answers(url: str, script: str, version_id: str, report: Any) -> ProbeAnswer:
        answer = await original(url, script, version_id, report)
        return ProbeAnswer(answer.ok, answer.status, answer.detail, world.stable)

    world.edge.version_probe = stable_answers  # type: ignore[method-assign]
    release = await world.deploy()
    for _ in range(SMOKE_TRIES - 1):
        assert release.state is State.DEPLOYING
        release = await world.wait(release)

    assert release.state is State.FAILED
    assert release.outcome is not None and "the version override was not applied" in release.outcome
    assert world.splits()[-1] == (VersionShare(world.stable, 100),)
    assert "release.step_deployed" not in world.actions()


async def test_when_0_percent_is_refused_as_invalid_the_smallest_valid_share_is_used() -> None:
    world = World()
    world.edge.fail_deploys = [EdgeRejected("percentage below minimum", codes=[10021])]

    final = await world.deploy()

    assert final.state is State.SUCCEEDED
    assert world.splits()[:2] == [
        (VersionShare(world.new, 0.0), VersionShare(world.stable, 100.0)),
        (VersionShare(world.new, 0.01), VersionShare(world.stable, 99.99)),
    ]
    assert SmokeRecord.of(final.steps[0]).share == 0.01


async def test_a_refusal_for_another_reason_stops_the_release() -> None:
    world = World()
    world.edge.fail_deploys = [EdgeRejected("secrets changed", codes=[10220])]

    final = await world.deploy()

    assert final.state is State.FAILED
    assert (
        final.outcome is not None
        and "the smoke test could not put v1.4.2 into the deployment at 0%" in final.outcome
    )
    assert len(world.splits()) == 1  # no second share tried; stable still serves alone
    assert world.edge.deployments[SCRIPT][0].versions == (VersionShare(world.stable, 100),)


async def test_a_first_deploy_has_nothing_to_stand_beside_and_skips_the_smoke_test() -> None:
    world = World()
    world.edge.deployments[SCRIPT] = []

    final = await world.deploy()

    assert final.state is State.SUCCEEDED
    assert world.splits() == [(VersionShare(world.new, 100),)]
    assert "smoke.skipped" in world.actions()
    assert "Smoke test:* skipped" in card_text(final)


async def test_a_restart_after_the_0_percent_deployment_does_not_deploy_it_again() -> None:
    world = World()
    world.edge.probe_ok = [False]
    release = await world.deploy()
    assert release.state is State.DEPLOYING
    # lose what the stage stored after the deployment (a crash before it was saved)
    step = release.steps[0]
    step.gate = {}
    assert release.id is not None
    stored = world.repo.releases[release.id]
    stored.steps[0].gate = {}

    final = await world.wait(release)

    assert final.state is State.SUCCEEDED
    zero = (VersionShare(world.new, 0.0), VersionShare(world.stable, 100.0))
    assert world.splits().count(zero) == 1


async def test_a_person_changing_the_split_before_the_smoke_test_pauses_the_release() -> None:
    world = World()
    hotfix = world.edge.add_version(SCRIPT, "v1.4.3")
    release = await world.service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    assert release.id is not None
    # the release takes the environment (stable read), then someone deploys by hand
    original = world.edge.active_deployment
    calls = 0

    async def hand_deploy_after_start(script: str) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            world.edge.put_live(SCRIPT, VersionShare(hotfix, 100))
        return await original(script)

    world.edge.active_deployment = hand_deploy_after_start  # type: ignore[method-assign]
    final = await world.service.kick(release.id)

    assert final is not None and final.paused
    assert world.splits() == []  # nothing deployed over the person's change
    assert "release.paused_for_drift" in world.actions()


async def test_the_probe_waits_until_the_0_percent_deployment_is_live() -> None:
    """Until Cloudflare lists the new deployment as the active one, an override would not be
    applied; the bot reads it back, a second apart, before probing."""
    world = World()
    before = world.edge.deployments[SCRIPT][0]
    original = world.edge.active_deployment
    stale_reads = [before, before]  # what the two reads after the deployment still show

    async def lagging(script: str, call: EdgeCall | None = None) -> Any:
        live = await original(script, call)
        if live is not before and stale_reads:
            return stale_reads.pop(0)
        return live

    world.edge.active_deployment = lagging  # type: ignore[method-assign]
    release = await world.deploy()
    assert release.state is State.DEPLOYING and world.edge.probes == []
    release = await world.wait(release)  # the second stale read
    assert world.edge.probes == []
    final = await world.wait(release)

    assert final.state is State.SUCCEEDED, final.outcome
    assert SmokeRecord.of(final.steps[0]).active_reads == 2
    zero = (VersionShare(world.new, 0.0), VersionShare(world.stable, 100.0))
    assert world.splits().count(zero) == 1
