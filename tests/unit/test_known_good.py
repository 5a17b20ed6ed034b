"""The last known good: which versions ended well at 100%, what a rollback without a version
goes back to, and the warning before Cloudflare's 100-version window drops it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.config import parse_config
from bot.engine.errors import NotFound
from bot.engine.known_good import (
    LastGood,
    first_rollback_target,
    known_good,
    last_good_of,
    last_known_good,
)
from bot.engine.model import Kind, Release, VersionShare, WorkerVersion
from bot.engine.service import DeployRequest, ReleaseService
from bot.engine.states import State
from bot.slack.blocks.checks import last_good_line
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


def release(vid: str, state: State = State.SUCCEEDED, kind: Kind = Kind.DEPLOY) -> Release:
    return Release("api", "production", "api", vid, "U0CAROL", "production", kind=kind, state=state)


def versions(*ids: str, secret: tuple[str, ...] = ()) -> dict[str, WorkerVersion]:
    return {v: WorkerVersion(v, triggered_by="secret" if v in secret else "upload") for v in ids}


@pytest.mark.parametrize(
    ("history", "deployable", "expected"),
    [
        ([], versions(), []),
        ([release("v3"), release("v2"), release("v1")], None, ["v3", "v2", "v1"]),
        # a failed or rolled back release did not end well; a rollback that succeeded did
        (
            [
                release("v4", State.ROLLED_BACK),
                release("v3", State.FAILED),
                release("v2", kind=Kind.ROLLBACK),
            ],
            None,
            ["v2"],
        ),
        # awaiting, cancelled, a D1 restore: not a version that served all traffic and ended well
        (
            [
                release("v5", State.AWAITING_APPROVAL),
                release("v4", State.CANCELLED),
                release("v3", kind=Kind.RESTORE_DB),
            ],
            None,
            [],
        ),
        # the same version twice counts once
        ([release("v2"), release("v1"), release("v2")], None, ["v2", "v1"]),
        # a version a secret change made is never taken
        ([release("v3s"), release("v2")], versions("v3s", "v2", secret=("v3s",)), ["v2"]),
        # one Cloudflare can no longer deploy is not offered
        ([release("v9"), release("v1")], versions("v9"), ["v9"]),
    ],
)
def test_known_good(
    history: list[Release], deployable: dict[str, WorkerVersion] | None, expected: list[str]
) -> None:
    assert known_good(history, deployable) == expected


def test_last_known_good_is_the_newest_besides_what_is_live() -> None:
    history = [release("v3"), release("v2")]
    assert last_known_good(history, None, live="v3") == "v2"
    assert last_known_good(history, None, live="v4") == "v3"  # someone deployed v4 by hand
    assert last_known_good([release("v3")], None, live="v3") is None


def test_the_window_warning() -> None:
    deployable = [WorkerVersion(f"v{i}", tag=f"t{i}") for i in range(100, 0, -1)]  # newest first
    near = last_good_of([release("v5")], deployable, live="v100")
    assert near == LastGood("v5", "t5", 96) and near.uploads_left == 5 and near.nearly_out
    far = last_good_of([release("v50")], deployable, live="v100")
    assert far is not None and far.uploads_left == 50 and not far.nearly_out
    assert LastGood.from_dict(near.to_dict()) == near
    card = release("v101", State.AWAITING_APPROVAL)
    card.last_good = near.to_dict()
    line = last_good_line(card)
    assert line is not None and "number 96 of the 100" in line and "after 5 more uploads" in line
    card.last_good = far.to_dict()
    assert last_good_line(card) is None


CONFIG = {
    "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
    "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
    "policies": {"production": {"approvals_required": 0}},
    "services": {
        "api": {"environments": {"production": {"script": "api", "policy": "production"}}}
    },
}


def service_on(edge: FakeEdge, repo: FakeReleaseRepository) -> ReleaseService:
    return ReleaseService(
        parse_config(CONFIG),
        repo,
        edge,
        RecordingNotifier(),
        FakeClock(),
        votes=FakeVotes(repo),
        timers=FakeTimers(),
        rails=FakeRails(repo),
        directory=FakeDirectory({}),
    )


async def test_rollback_without_a_version_goes_to_the_last_known_good() -> None:
    edge, repo = FakeEdge(), FakeReleaseRepository()
    v1, _, v3, v4 = (edge.add_version("api", t) for t in ("v1", "v2", "v3", "v4"))
    edge.put_live("api", VersionShare(v1, 100))
    service = service_on(edge, repo)
    for tag in ("v2", "v3"):
        started = await service.deploy(DeployRequest("api", tag, "U0CAROL", "production"))
        assert (await service.kick(started.release.id)).state is State.SUCCEEDED
    edge.put_live("api", VersionShare(v4, 100))  # a hotfix by hand, outside the bot
    # the version at 100% before the last release would be v2; the last that ended well is v3
    back = await service.request_rollback("api", "production", "U0CAROL", None, "bad hotfix")
    assert back is not None and back.version_id == v3


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        (["v2", "v1"], "v2"),
        (["v3", "v2"], "v2"),  # v3 is live
        (["s1", "v1"], "v1"),  # s1 was made by a secret change alone
        (["gone", "v1"], "v1"),  # Cloudflare can no longer deploy it
        ([None, "s1", "gone"], None),
    ],
)
def test_a_rollback_target_without_a_known_good(
    candidates: list[str | None], expected: str | None
) -> None:
    deployable = versions("v3", "v2", "v1", "s1", secret=("s1",))
    assert first_rollback_target(candidates, deployable, live="v3") == expected


async def test_rollback_without_a_version_never_goes_to_a_secret_change() -> None:
    """What was live before the only release there was made by a secret change alone: the
    rollback asks for a version instead of going back to it."""
    edge, repo = FakeEdge(), FakeReleaseRepository()
    s1 = edge.add_version("api", "v1")
    edge.versions["api"] = [replace(v, triggered_by="secret") for v in edge.versions["api"]]
    edge.add_version("api", "v2")
    edge.put_live("api", VersionShare(s1, 100))
    service = service_on(edge, repo)
    started = await service.deploy(DeployRequest("api", "v2", "U0CAROL", "production"))
    assert (await service.kick(started.release.id)).state is State.SUCCEEDED

    with pytest.raises(NotFound, match=r"secret change alone does not count\); name one"):
        await service.request_rollback("api", "production", "U0CAROL", None, "bad release")
    assert [r.kind for r in repo.releases.values()] == [Kind.DEPLOY]
