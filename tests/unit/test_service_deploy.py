"""The deploy use case with fake ports: staging deploys at once, failures put stable back."""

from __future__ import annotations

import logging

import pytest

from bot.config import parse_config
from bot.engine.errors import EdgeRejected, EdgeUnavailable, NotFound, UnknownVersion
from bot.engine.model import StepStatus, Strategy, VersionShare
from bot.engine.service import DeployRequest, ReleaseService
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

CONFIG = {
    "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
    "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
    "policies": {
        "staging": {"approvals_required": 0},
        "production": {
            "approvals_required": 2,
            "approvers": ["U0ALICE", "U0BOB", "U0CAROL"],
            "rollout": {"steps": [10, 50, 100], "bake": "2s"},
        },
    },
    "services": {
        "tax-api": {
            "environments": {
                "staging": {"script": "tax-api-staging", "policy": "staging"},
                "production": {"script": "tax-api", "policy": "production"},
            }
        }
    },
}


@pytest.fixture
def world() -> tuple[ReleaseService, FakeEdge, FakeReleaseRepository, RecordingNotifier]:
    edge = FakeEdge()
    old = edge.add_version("tax-api-staging", "v1.4.1")
    edge.add_version("tax-api-staging", "v1.4.2")
    edge.put_live("tax-api-staging", VersionShare(old, 100))
    repo = FakeReleaseRepository()
    notifier = RecordingNotifier()
    service = make_service(parse_config(CONFIG), repo, edge, notifier)
    return service, edge, repo, notifier


def make_service(config, repo, edge, notifier, clock=None, groups=None) -> ReleaseService:
    return ReleaseService(
        config,
        repo,
        edge,
        notifier,
        clock or FakeClock(),
        votes=FakeVotes(repo),
        timers=FakeTimers(),
        rails=FakeRails(repo),
        directory=FakeDirectory(groups or {}),
    )


async def test_staging_deploy_goes_straight_to_100_percent(world) -> None:
    service, edge, repo, notifier = world
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    assert release.environment == "staging"  # the service's first environment
    assert release.state is State.APPROVED
    assert release.strategy is Strategy.IMMEDIATE and release.plan == (100,)

    final = await service.kick(release.id)

    assert final.state is State.SUCCEEDED
    new = release.version_id
    assert edge.deploy_calls == [("tax-api-staging", (VersionShare(new, 100),))]
    assert [s.status for s in final.steps] == [StepStatus.PASSED]
    actions = [e.action for e in repo.audit]
    assert actions == [
        "release.requested",
        "release.auto_approved",
        "release.started",
        "release.step_deployed",
        "gate.passed",
        "release.succeeded",
    ]
    assert all(e.release_key == release.key for e in repo.audit)
    assert [c.state for c in notifier.cards][-1] is State.SUCCEEDED
    assert len(notifier.audit) == len(repo.audit)


async def test_production_needs_approval_and_waits(world) -> None:
    service, edge, _, _ = world
    edge.add_version("tax-api", "v1.4.2")
    release = await service.request_deploy(
        DeployRequest("tax-api", "v1.4.2", "U0CAROL", environment="production")
    )
    assert release.state is State.AWAITING_APPROVAL
    assert release.plan == (10, 50, 100) and release.strategy is Strategy.GRADUAL
    assert release.expires_at is not None
    assert (await service.kick(release.id)).state is State.AWAITING_APPROVAL
    assert edge.deploy_calls == []


async def test_unknown_service_environment_and_version_are_explained(world) -> None:
    service, *_ = world
    with pytest.raises(NotFound, match="unknown service 'tax-apj'; did you mean 'tax-api'"):
        await service.request_deploy(DeployRequest("tax-apj", "v1", "U1"))
    with pytest.raises(NotFound, match="has no environment 'prod'; did you mean 'production'"):
        await service.request_deploy(DeployRequest("tax-api", "v1", "U1", environment="prod"))
    with pytest.raises(UnknownVersion, match=r"v9\.9\.9"):
        await service.request_deploy(DeployRequest("tax-api", "v9.9.9", "U1"))


async def test_second_release_waits_in_the_queue_until_the_first_ends(world) -> None:
    service, edge, _, _ = world
    first = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    await service.driver._advance(await service.get(first.id))  # R-1 holds the slot (deploying)
    second = await service.request_deploy(DeployRequest("tax-api", "v1.4.1", "U0DAVE"))
    waiting = await service.kick(second.id)
    assert waiting.state is State.APPROVED
    assert (await service.queue_position(waiting))[0] == 1
    assert (await service.kick(first.id)).state is State.SUCCEEDED
    await service.run_due()  # the scheduler's tick starts the next in line
    assert (await service.get(second.id)).state is State.SUCCEEDED
    assert len(edge.deploy_calls) == 2


async def test_refused_deployment_fails_and_keeps_stable(world) -> None:
    service, edge, repo, _ = world
    stable = (await edge.active_deployment("tax-api-staging")).versions[0].version_id
    edge.fail_deploys.append(EdgeRejected("Version not deployable", codes=[10021], status=400))
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    final = await service.kick(release.id)
    assert final.state is State.FAILED
    assert "Version not deployable" in final.outcome
    assert (await edge.active_deployment("tax-api-staging")).stable_version_id == stable
    assert len(edge.deploy_calls) == 1  # stable was still live: nothing to restore
    assert repo.audit[-1].action == "release.failed"


async def test_unreachable_cloudflare_fails_safe(world) -> None:
    service, edge, _, _ = world
    edge.fail_deploys.append(EdgeUnavailable("Cloudflare answered 503 four times"))
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    final = await service.kick(release.id)
    assert final.state is State.FAILED and "503" in final.outcome


async def test_resume_after_crash_between_intent_and_deploy(world) -> None:
    """The intent was stored, the process died before the POST: resuming deploys once."""
    service, edge, _, _ = world
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    await service.driver._advance(await service.get(release.id))  # START: intent written
    assert (await service.get(release.id)).state is State.DEPLOYING
    assert edge.deploy_calls == []
    assert [r.key for r in await service.resume_unfinished()] == [release.key]
    await service.run_due()
    assert (await service.get(release.id)).state is State.SUCCEEDED
    assert len(edge.deploy_calls) == 1


async def test_resume_after_crash_after_the_post(world) -> None:
    """The POST went through but its result was never stored: no second deployment."""
    service, edge, _, _ = world
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    await service.driver._advance(await service.get(release.id))
    edge.put_live("tax-api-staging", VersionShare(release.version_id, 100))
    await service.resume_unfinished()
    await service.run_due()
    assert (await service.get(release.id)).state is State.SUCCEEDED
    assert edge.deploy_calls == []


async def test_an_unexpected_error_while_driving_is_logged_and_the_release_goes_on(
    world, caplog: pytest.LogCaptureFixture
) -> None:
    service, edge, _, _ = world
    clock = service.clock
    edge.fail_deploys.append(RuntimeError("connection pool closed"))
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))

    caplog.set_level(logging.ERROR, logger="releasebot.engine")
    kicked = await service.kick(release.id)  # nothing raised at whoever asked

    assert kicked.state is State.DEPLOYING
    logged = [r for r in caplog.records if "driving release" in r.getMessage()]
    assert logged and "RuntimeError: connection pool closed" in logged[0].getMessage()
    assert logged[0].exc_info is not None  # with its traceback
    clock.advance(service.driver.lease.total_seconds() + 1)  # the lease runs out
    await service.run_due()
    assert (await service.get(release.id)).state is State.SUCCEEDED
    assert len(edge.deploy_calls) == 2
