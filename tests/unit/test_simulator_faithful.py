"""The simulator follows Cloudflare where Cloudflare is quiet about it: version overrides
only for versions in the active deployment, 0% shares, the rollback refusals, the 100-version
window and error envelopes as the contract has them. Every API answer here is also checked
against the contract (request and response)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bot.cloudflare.contract import load
from bot.cloudflare.sim_control import VERSION_HEADER, pick_version
from bot.cloudflare.sim_model import check_split
from bot.cloudflare.sim_state import SimulatorState
from bot.cloudflare.simulator import create_simulator

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OVERRIDE = "Cloudflare-Workers-Version-Overrides"


@pytest.fixture
def state() -> SimulatorState:
    seeded = SimulatorState(clock=lambda: T0)
    seeded.seed_example()
    return seeded


@pytest_asyncio.fixture
async def http(state: SimulatorState) -> AsyncIterator[httpx.AsyncClient]:
    app = create_simulator(state, api_token="t", validate_contract=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sim",
        headers={"Authorization": "Bearer t"},
    ) as client:
        yield client
    # every request and answer in a test met the contract
    assert state.contract_violations == []


def ids(state: SimulatorState) -> tuple[str, str, str]:
    """(v1.4.2, v1.4.1 at 100%, v1.4.0) of tax-api."""
    new, stable, oldest = (state.version_id("tax-api", t) for t in ("v1.4.2", "v1.4.1", "v1.4.0"))
    return new, stable, oldest


async def deploy(
    http: httpx.AsyncClient, state: SimulatorState, *pairs: tuple[str, float], force: bool = False
) -> httpx.Response:
    body = {
        "strategy": "percentage",
        "versions": [{"version_id": v, "percentage": p} for v, p in pairs],
        "annotations": {"workers/message": "test"},
    }
    return await http.post(
        f"/client/v4/accounts/{state.account_id}/workers/scripts/tax-api/deployments",
        params={"force": "true"} if force else None,
        json=body,
    )


def failure(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    [error] = body["errors"]
    return error["code"], error["message"]


async def probe(http: httpx.AsyncClient, version: str | None = None) -> httpx.Response:
    headers = {OVERRIDE: f'tax-api="{version}"'} if version else {}
    return await http.get("/__workers/tax-api/healthz", headers=headers)


# -- the override rule ---------------------------------------------------------------------


def test_an_override_of_a_version_outside_the_deployment_is_silently_ignored(
    state: SimulatorState,
) -> None:
    new, stable, _ = ids(state)
    header = f'tax-api="{new}"'
    # uploaded, not deployed: the request follows the split (stable at 100%)
    assert [pick_version(state, "tax-api", header) for _ in range(10)] == [stable] * 10


def test_an_override_reaches_a_version_at_0_percent(state: SimulatorState) -> None:
    new, stable, _ = ids(state)
    state.deploy_direct("tax-api", [(new, 0), (stable, 100)])

    assert pick_version(state, "tax-api", f'tax-api="{new}"') == new
    # without the header nobody reaches it
    assert {pick_version(state, "tax-api", None) for _ in range(100)} == {stable}
    # an override for another Worker, or a malformed one, is ignored too
    assert pick_version(state, "tax-api", f'tax-web="{new}"') == stable
    assert pick_version(state, "tax-api", f"tax-api={new}") == stable


async def test_the_worker_says_which_version_answered_unless_it_does_not_report(
    http: httpx.AsyncClient, state: SimulatorState
) -> None:
    new, stable, _ = ids(state)

    before = await probe(http, new)
    assert before.status_code == 200 and before.json()["version"] == stable
    assert before.headers[VERSION_HEADER] == stable

    assert (await deploy(http, state, (new, 0), (stable, 100))).status_code == 200
    pinned = await probe(http, new)
    assert pinned.json()["version"] == new and pinned.headers[VERSION_HEADER] == new

    state.set_reports_version("tax-api", new, False)
    silent = await probe(http, new)
    assert silent.status_code == 200
    assert "version" not in silent.json() and VERSION_HEADER not in silent.headers

    state.set_healthy("tax-api", new, False)
    assert (await probe(http, new)).status_code == 500
    assert (await probe(http)).status_code == 200  # users on the stable version are fine


# -- 0% and the split rules ---------------------------------------------------------------


async def test_a_0_percent_share_is_accepted_as_wrangler_sends_it(
    http: httpx.AsyncClient, state: SimulatorState
) -> None:
    new, stable, _ = ids(state)

    response = await deploy(http, state, (new, 0), (stable, 100))

    assert response.status_code == 200
    assert response.json()["result"]["versions"] == [
        {"version_id": new, "percentage": 0},
        {"version_id": stable, "percentage": 100},
    ]
    assert state.active_split("tax-api") == [(new, 0.0), (stable, 100.0)]
    listed = await http.get(
        f"/client/v4/accounts/{state.account_id}/workers/scripts/tax-api/deployments"
    )
    assert listed.json()["result"]["deployments"][0]["versions"][0]["percentage"] == 0


def test_the_contract_takes_0_percent_and_still_refuses_negative_shares() -> None:
    contract = load()
    path = "/accounts/0123456789abcdef0123456789abcdef/workers/scripts/tax-api/deployments"
    op, params = contract.find("POST", path) or pytest.fail("no operation")
    headers = {"authorization": "Bearer t", "content-type": "application/json"}

    def problems(pct: float) -> list[str]:
        body = {
            "strategy": "percentage",
            "versions": [
                {"version_id": "a", "percentage": pct},
                {"version_id": "b", "percentage": 100 - pct},
            ],
        }
        return contract.check_request(op, params, [], headers, json.dumps(body).encode())

    assert problems(0) == []
    assert any("minimum" in p for p in problems(-1))


@pytest.mark.parametrize(
    ("pairs", "words"),
    [
        ([("a", 100), ("b", 0)], None),
        ([("a", 0)], "add up to 100"),
        ([("a", -1), ("b", 101)], "outside 0-100"),
        ([("a", 50), ("a", 50)], "same version twice"),
    ],
)
def test_split_rules(pairs: list[tuple[str, float]], words: str | None) -> None:
    problem = check_split(pairs)
    assert (problem is None) if words is None else (words in (problem or ""))


# -- rollback refusals ----------------------------------------------------------------------


async def test_a_secret_change_refuses_an_older_version_without_force(
    http: httpx.AsyncClient, state: SimulatorState
) -> None:
    _, stable, oldest = ids(state)
    state.mark_secret_changed("tax-api", names=["STRIPE_KEY"])

    refused = await deploy(http, state, (stable, 100))
    code, message = failure(refused)

    assert refused.status_code == 400 and code == 10220
    assert "STRIPE_KEY" in message
    forced = await deploy(http, state, (stable, 100), force=True)
    assert forced.status_code == 200
    assert state.active_split("tax-api") == [(stable, 100.0)]
    assert (await deploy(http, state, (oldest, 100))).status_code == 400


async def test_a_durable_object_migration_refuses_a_rollback_across_it_even_with_force(
    http: httpx.AsyncClient, state: SimulatorState
) -> None:
    _, stable, _ = ids(state)
    migrated = state.upload_version("tax-api", tag="v1.5.0", migration_tag="v2")
    state.deploy_direct("tax-api", migrated)

    for force in (False, True):
        refused = await deploy(http, state, (stable, 100), force=force)
        code, message = failure(refused)
        assert refused.status_code == 400 and code == 10021
        assert "Durable Object migration" in message
    assert state.active_split("tax-api") == [(migrated, 100.0)]

    # a newer version with the same migration tag rolls forward and back freely
    later = state.upload_version("tax-api", tag="v1.5.1", migration_tag="v2")
    assert (await deploy(http, state, (later, 100))).status_code == 200
    assert (await deploy(http, state, (migrated, 100))).status_code == 200


async def test_a_deleted_binding_refuses_the_version_that_binds_it(
    http: httpx.AsyncClient, state: SimulatorState
) -> None:
    binding = {"type": "kv_namespace", "name": "CACHE", "id": "0f2ac74b498b48028cb68387c421e279"}
    cached = state.upload_version("tax-api", tag="v1.3.9", bindings=[binding])
    detail = await http.get(
        f"/client/v4/accounts/{state.account_id}/workers/scripts/tax-api/versions/{cached}"
    )
    assert detail.json()["result"]["resources"]["bindings"] == [
        {"type": "kv_namespace", "name": "CACHE", "namespace_id": binding["id"]}
    ]
    state.delete_resource(binding["id"])

    refused = await deploy(http, state, (cached, 100), force=True)

    code, message = failure(refused)
    assert refused.status_code == 400 and code == 10021
    assert "binding CACHE" in message and "no longer exists" in message


async def test_only_the_newest_100_versions_can_be_deployed(
    http: httpx.AsyncClient, state: SimulatorState
) -> None:
    new, stable, oldest = ids(state)
    for n in range(98):
        state.upload_version("tax-api", tag=f"build-{n}")
    # 101 versions: v1.4.0 alone has dropped out of the newest 100
    assert (await deploy(http, state, (stable, 100))).status_code == 200
    refused = await deploy(http, state, (oldest, 100))
    assert refused.status_code == 400 and "last 100 versions" in failure(refused)[1]
    # a version outside the window is not reachable by override either: it cannot be deployed
    assert pick_version(state, "tax-api", f'tax-api="{oldest}"') == stable
    assert new in {v.id for v in state.deployable(state.script("tax-api"))}


# -- error envelopes --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503, 400])
async def test_injected_failures_answer_the_contracts_failure_envelope(
    http: httpx.AsyncClient, state: SimulatorState, status: int
) -> None:
    state.inject("GET", "deployments$", status, retry_after=3)
    path = f"/accounts/{state.account_id}/workers/scripts/tax-api/deployments"

    response = await http.get(f"/client/v4{path}")

    assert response.status_code == status
    contract = load()
    op, _ = contract.find("GET", path) or pytest.fail("no operation")
    # the contract declares 4XX failures; a 5XX body is held to the same envelope
    assert contract.check_response(op, min(status, 499), response.json()) == []
    code, _ = failure(response)
    assert code >= 1000
    if status == 429:
        assert response.headers["retry-after"] == "3"


async def test_graphql_errors_have_the_documented_shape(
    http: httpx.AsyncClient, state: SimulatorState
) -> None:
    response = await http.post("/client/v4/graphql", json={"query": "{ viewer { zones } }"})

    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["path"] == ["viewer", "accounts", "0", "workersInvocationsAdaptive"]
    assert error["extensions"]["timestamp"].endswith("Z")


def test_a_new_deployment_takes_a_moment_to_reach_the_override() -> None:
    now = [T0]
    state = SimulatorState(clock=lambda: now[0])
    state.seed_example()
    state.override_lag = timedelta(seconds=2)
    new, stable, _ = ids(state)
    state.deploy_direct("tax-api", [(new, 0), (stable, 100)])
    header = f'tax-api="{new}"'

    assert pick_version(state, "tax-api", header) == stable  # not applied yet, silently
    now[0] = T0 + timedelta(seconds=2)
    assert pick_version(state, "tax-api", header) == new
