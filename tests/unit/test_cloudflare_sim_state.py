"""The simulator's state on its own: seeding, direct changes, faults and traffic history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.cloudflare.sim_graphql import version_traffic
from bot.cloudflare.sim_model import SimError
from bot.cloudflare.sim_state import EXAMPLE_DATABASE_ID, SimulatorState
from bot.engine.model import VersionShare

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> SimulatorState:
    seeded = SimulatorState(clock=clock)
    seeded.seed_example()
    return seeded


def test_seed_example(state: SimulatorState) -> None:
    assert list(state.scripts) == ["tax-api", "tax-api-staging", "tax-web", "tax-web-staging"]
    for name, script in state.scripts.items():
        assert [v.tag for v in script.versions] == ["v1.4.0", "v1.4.1", "v1.4.2"]
        assert all(v.message and v.author_email for v in script.versions)
        assert state.active_split(name) == [(state.version_id(name, "v1.4.1"), 100.0)]
    assert EXAMPLE_DATABASE_ID in state.databases
    ids = {v.id for s in state.scripts.values() for v in s.versions}
    assert len(ids) == 12


def test_ids_repeat_for_the_same_seed(clock: Clock) -> None:
    first, second = SimulatorState(clock=clock), SimulatorState(clock=clock)
    first.seed_example()
    second.seed_example()
    assert first.version_id("tax-api", "v1.4.2") == second.version_id("tax-api", "v1.4.2")
    assert SimulatorState(seed=1, clock=clock).new_uuid() != SimulatorState(clock=clock).new_uuid()


def test_deploy_direct_accepts_several_split_forms(state: SimulatorState) -> None:
    new, old = state.version_id("tax-web", "v1.4.2"), state.version_id("tax-web", "v1.4.1")
    state.deploy_direct("tax-web", [VersionShare(new, 20), VersionShare(old, 80)])
    assert state.active_split("tax-web") == [(new, 20.0), (old, 80.0)]
    state.deploy_direct("tax-web", [{"version_id": new, "percentage": 100}])
    assert state.active_split("tax-web") == [(new, 100.0)]
    state.deploy_direct("tax-web", old, source="dash")
    assert state.script("tax-web").active.source == "dash"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("split", "words"),
    [
        ([("a", 50), ("b", 40)], "add up to 100"),
        ([("a", 40), ("b", 30), ("c", 30)], "one or two"),
        ([("nope", 100)], "has no version"),
    ],
)
def test_deploy_direct_refuses_what_the_api_refuses(
    state: SimulatorState, split: list[tuple[str, float]], words: str
) -> None:
    with pytest.raises(SimError, match=words):
        state.deploy_direct("tax-api", split)


def test_deployments_keep_their_order_under_a_frozen_clock(state: SimulatorState) -> None:
    vid = state.version_id("tax-api", "v1.4.2")
    first = state.deploy_direct("tax-api", vid)
    second = state.deploy_direct("tax-api", vid)
    deployments = state.script("tax-api").deployments
    assert [d.id for d in deployments[:2]] == [second, first]
    assert deployments[0].created_on > deployments[1].created_on


def test_faults_count_down_and_match_method_and_path(state: SimulatorState) -> None:
    state.inject("POST", r"/deployments$", 502, count=2)
    assert state.take_fault("GET", "/client/v4/accounts/a/workers/scripts/s/deployments") is None
    path = "/client/v4/accounts/a/workers/scripts/s/deployments"
    assert state.take_fault("POST", path) is not None
    assert state.take_fault("post", path) is not None
    assert state.take_fault("POST", path) is None
    state.inject("*", "versions", None, delay=0.1)
    assert state.take_fault("GET", "/x/versions") is not None
    with pytest.raises(SimError):
        state.inject("GET", "x", 500, count=0)


def test_secret_change_redeploys_and_marks_older_versions(state: SimulatorState) -> None:
    before = [v.number for v in state.script("tax-api").versions]
    new = state.mark_secret_changed("tax-api", names=["DB_PASSWORD"])
    script = state.script("tax-api")
    assert new is not None
    assert script.secrets_changed_at == max(before)
    assert script.changed_secrets == ["DB_PASSWORD"]
    assert state.active_split("tax-api") == [(new, 100.0)]
    assert state.version("tax-api", new).number > script.secrets_changed_at
    assert state.mark_secret_changed("tax-web", redeploy=False) is None


def test_traffic_follows_the_deployment_history(state: SimulatorState, clock: Clock) -> None:
    script = state.script("tax-web")
    new, old = state.version_id("tax-web", "v1.4.2"), state.version_id("tax-web", "v1.4.1")
    state.set_traffic("tax-web", 1)
    clock.now = T0 + timedelta(minutes=10)
    state.deploy_direct("tax-web", [(new, 25), (old, 75)])
    clock.now = T0 + timedelta(minutes=20)
    state.deploy_direct("tax-web", new)

    traffic = version_traffic(script, T0, T0 + timedelta(minutes=30))

    assert traffic[old] == pytest.approx(600 + 450)
    assert traffic[new] == pytest.approx(150 + 600)
    assert version_traffic(script, T0 - timedelta(days=10), T0 - timedelta(days=9)) == {}


def test_d1_bookmarks_move_with_writes(state: SimulatorState, clock: Clock) -> None:
    db = state.database(EXAMPLE_DATABASE_ID)
    first = db.current
    clock.now = T0 + timedelta(minutes=1)
    second = state.d1_write(EXAMPLE_DATABASE_ID)
    assert db.current == second != first
    assert db.bookmark_at(T0) == first
    assert db.bookmark_at(T0 + timedelta(minutes=5)) == second


def test_validation_of_direct_changes(state: SimulatorState) -> None:
    vid = state.version_id("tax-api", "v1.4.2")
    with pytest.raises(SimError):
        state.set_error_rate("tax-api", vid, 1.5)
    with pytest.raises(SimError):
        state.set_traffic("tax-api", -1)
    with pytest.raises(SimError):
        state.add_script("Tax API")
    with pytest.raises(SimError, match="at most 20"):
        state.upload_version("tax-api", tag="x" * 21)
    with pytest.raises(SimError, match="no script"):
        state.upload_version("missing")


def test_reset_empties_the_account(state: SimulatorState) -> None:
    state.inject("GET", "x", 500)
    state.reset()
    assert (state.scripts, state.databases, state.faults) == ({}, {}, [])
    state.seed_example()
    assert len(state.scripts) == 4
