"""Drift as pure functions (what the bot left vs what is live) and the watch over fake ports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config import parse_config
from bot.engine.drift import (
    DRIFT_ACTION,
    LastDeployed,
    find_drift,
    last_deployed,
    reached_edge,
)
from bot.engine.drift_watch import DriftWatch
from bot.engine.model import AuditEntry, Deployment, Kind, Release, Step, StepStatus, VersionShare
from bot.engine.service import DeployRequest, ReleaseService
from bot.engine.states import State
from bot.slack.render import drift_text
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

NEW, OLD, OTHER = "aaaaaaaa-new", "bbbbbbbb-old", "cccccccc-other"
WHEN = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)


def _release(state: State, **changes: Any) -> Release:
    values: dict[str, Any] = {
        "service": "tax-api",
        "environment": "staging",
        "script": "tax-api-staging",
        "version_id": NEW,
        "stable_version_id": OLD,
        "requested_by": "U0CAROL",
        "policy": "staging",
        "state": state,
        "id": 7,
        "current_step": 0,
        "steps": [Step(0, 100, StepStatus.PASSED, deployment_id="dep-bot")],
    }
    values.update(changes)
    return Release(**values)


def _live(dep_id: str, *shares: tuple[str, float], **meta: Any) -> Deployment:
    return Deployment(dep_id, tuple(VersionShare(v, p) for v, p in shares), **meta)


@pytest.mark.parametrize(
    ("release", "reached"),
    [
        (_release(State.SUCCEEDED), True),
        (_release(State.ROLLED_BACK, steps=[]), True),
        (_release(State.FAILED, steps=[], current_step=0), True),
        (_release(State.FAILED, steps=[], current_step=-1), False),  # failed before any traffic
        (_release(State.CANCELLED, steps=[], current_step=-1), False),
        (_release(State.EXPIRED, steps=[], current_step=-1), False),
        (_release(State.VERIFYING), False),  # in flight: its own checks watch it
        (_release(State.SUCCEEDED, kind=Kind.RESTORE_DB), False),  # D1, not the Worker
    ],
)
def test_which_releases_reached_cloudflare(release: Release, reached: bool) -> None:
    assert reached_edge(release) is reached


def test_what_the_bot_left_comes_from_steps_gates_and_records() -> None:
    release = _release(
        State.ROLLED_BACK,
        steps=[
            Step(0, 10, StepStatus.PASSED, "dep-10", gate={"verified_deployment": "dep-10"}),
            Step(1, 50, StepStatus.FAILED, "dep-50"),
        ],
    )
    records = [
        AuditEntry(
            "releasebot", "release.rolled_back", WHEN, 7, detail={"deployment_id": "dep-rb"}
        ),
        AuditEntry("releasebot", "release.step_deployed", WHEN, 8, detail={"deployment_id": "x"}),
    ]
    known = last_deployed(release, records)
    assert known.deployment_ids == {"dep-10", "dep-50", "dep-rb"}  # not R-8's
    assert known.split == (VersionShare(OLD, 100),) and known.release_key == "R-7"
    assert last_deployed(_release(State.SUCCEEDED), []).split == (VersionShare(NEW, 100),)


def test_drift_is_a_live_deployment_the_bot_did_not_leave() -> None:
    known = LastDeployed("R-7", frozenset({"dep-bot"}), (VersionShare(NEW, 100),))
    bots = _live("dep-bot", (NEW, 100))
    restored = _live("dep-restore", (NEW, 100))  # the same split under another id
    by_hand = _live(
        "dep-hand",
        (OTHER, 100),
        author_email="mallory@example.com",
        created_on=WHEN,
        source="dash",
        message="quick fix",
    )
    assert find_drift("tax-api", "staging", "s", bots, known) is None
    assert find_drift("tax-api", "staging", "s", restored, known) is None
    assert find_drift("tax-api", "staging", "s", by_hand, None) is None  # nothing to compare
    assert find_drift("tax-api", "staging", "s", None, known) is None
    unknown = LastDeployed("R-7", frozenset(), None)
    assert find_drift("tax-api", "staging", "s", by_hand, unknown) is None

    drift = find_drift("tax-api", "staging", "tax-api-staging", by_hand, known)
    assert drift is not None
    assert drift.detail() == {
        "deployment_id": "dep-hand",
        "author_email": "mallory@example.com",
        "created_on": "2026-11-26T14:30:00+00:00",
        "source": "dash",
        "message": "quick fix",
        "split": {OTHER: 100},
        "expected_release": "R-7",
        "expected_split": {NEW: 100},
    }
    text = drift_text(drift, {OTHER: "v1.3.9", NEW: "v1.4.2"}, "/release")
    assert text.startswith(":warning: *tax-api/staging was changed outside the bot*")
    for part in (
        "`dep-hand` by mallory@example.com via dash at <!date^",
        "|2026-11-26 14:30 UTC>",
        "“quick fix”",
        "`cccccccc` (v1.3.9) 100%",
        "The bot last left `aaaaaaaa` (v1.4.2) 100% there (R-7)",
        f"`/release rollback tax-api in staging to {NEW}` undoes it",
    ):
        assert part in text


class MemoryLedger:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def record_once(self, entry: AuditEntry, deployment_id: str) -> bool:
        for e in self.entries:
            same = (e.service, e.environment) == (entry.service, entry.environment)
            if same and e.detail["deployment_id"] == deployment_id:
                return False
        self.entries.append(entry)
        return True


CONFIG = {
    "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
    "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
    "policies": {"staging": {"approvals_required": 0}},
    "services": {
        "tax-api": {
            "environments": {"staging": {"script": "tax-api-staging", "policy": "staging"}}
        },
        "tax-web": {
            "environments": {"staging": {"script": "tax-web-staging", "policy": "staging"}}
        },
    },
}


async def test_the_watch_announces_a_drift_once() -> None:
    edge = FakeEdge()
    for script in ("tax-api-staging", "tax-web-staging"):
        old = edge.add_version(script, "v1.4.1")
        edge.add_version(script, "v1.4.2")
        edge.put_live(script, VersionShare(old, 100))
    repo, notifier = FakeReleaseRepository(), RecordingNotifier()
    service = ReleaseService(
        parse_config(CONFIG),
        repo,
        edge,
        notifier,
        FakeClock(),
        votes=FakeVotes(repo),
        timers=FakeTimers(),
        rails=FakeRails(repo),
        directory=FakeDirectory(),
    )
    ledger = MemoryLedger()
    watch = DriftWatch(service.config, service.repo, service.edge, service.recorder, ledger)
    release = await service.request_deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL"))
    await service.kick(release.id)
    assert await watch.run() == []  # what the bot left; tax-web was never released by it

    old = edge.versions["tax-api-staging"][-1].id
    edge.deployments["tax-api-staging"].insert(
        0, _live("dep-by-hand", (old, 100), author_email="ben@example.com", source="wrangler")
    )
    edge.put_live("tax-web-staging", VersionShare(edge.versions["tax-web-staging"][0].id, 100))

    [drift] = await watch.run()
    assert (drift.service, drift.environment, drift.deployment.id) == (
        "tax-api",
        "staging",
        "dep-by-hand",
    )
    assert await watch.run() == []
    assert len([a for a in notifier.announcements if "outside the bot" in a]) == 1
    assert [e.action for e in ledger.entries] == [DRIFT_ACTION]
    assert [e.action for e in notifier.audit if e.action == DRIFT_ACTION] == [DRIFT_ACTION]
