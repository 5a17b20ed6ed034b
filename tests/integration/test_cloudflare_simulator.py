"""The simulator over HTTP: every endpoint held to the contract, the API's own validation,
the control endpoints and the fake Workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio

from bot.cloudflare.client import METRICS_QUERY
from bot.cloudflare.sim_state import EXAMPLE_DATABASE_ID

if TYPE_CHECKING:
    from tests.fixtures.cloudflare import SimServer


@pytest_asyncio.fixture
async def http(cf_server: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client on the server root, with the API token."""
    async with httpx.AsyncClient(
        base_url=cf_server.url, headers={"Authorization": f"Bearer {cf_server.token}"}
    ) as client:
        yield client


def account(server: SimServer) -> str:
    return f"/client/v4/accounts/{server.state.account_id}"


def codes(response: httpx.Response) -> list[int]:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return [e["code"] for e in body["errors"]]


async def deploy(http: httpx.AsyncClient, server: SimServer, body: Any) -> httpx.Response:
    return await http.post(f"{account(server)}/workers/scripts/tax-api/deployments", json=body)


async def test_every_endpoint_meets_the_contract(
    http: httpx.AsyncClient, cf_server: SimServer
) -> None:
    state = cf_server.state
    base = account(cf_server)
    script = f"{base}/workers/scripts/tax-api"
    v142, v141 = state.version_id("tax-api", "v1.4.2"), state.version_id("tax-api", "v1.4.1")
    d1 = f"{base}/d1/database/{EXAMPLE_DATABASE_ID}"
    split = {
        "strategy": "percentage",
        "versions": [
            {"version_id": v142, "percentage": 25.5},
            {"version_id": v141, "percentage": 74.5},
        ],
        "annotations": {"workers/message": "canary"},
    }

    answers = [
        await http.get(f"{script}/versions", params={"page": 1, "per_page": 2}),
        await http.get(f"{script}/versions", params={"deployable": "true"}),
        await http.get(f"{script}/versions/{v142}"),
        await http.get(f"{script}/deployments"),
        created := await http.post(f"{script}/deployments", json=split),
        await http.get(f"{script}/deployments/{created.json()['result']['id']}"),
        await http.get(f"{d1}"),
        bookmark := await http.get(f"{d1}/time_travel/bookmark"),
        await http.get(f"{d1}/time_travel/bookmark", params={"timestamp": "2030-01-01T00:00:00Z"}),
        await http.post(
            f"{d1}/time_travel/restore", params={"bookmark": bookmark.json()["result"]["bookmark"]}
        ),
        await http.get("/client/v4/user/tokens/verify"),
        await http.get(f"{base}/tokens/verify"),
        await http.post(
            "/client/v4/graphql",
            json={
                "query": METRICS_QUERY,
                "variables": {
                    "a": state.account_id,
                    "s": "tax-api",
                    "from": "2030-01-01T00:00:00Z",
                    "to": "2030-01-01T00:05:00Z",
                },
            },
        ),
    ]
    assert [r.status_code for r in answers] == [200] * len(answers)
    assert all(r.json()["success"] for r in answers[:-1])

    refusals = [
        (await http.get(f"{base}/workers/scripts/nope/versions"), 404),
        (await http.get(f"{script}/versions/{'0' * 36}"), 404),
        (await http.get(f"{script}/deployments/{'0' * 36}"), 404),
        (await http.post(f"{script}/deployments", json={**split, "versions": []}), 400),
        (await http.get(f"{base}/d1/database/unknown-db/time_travel/bookmark"), 404),
        (await http.post(f"{d1}/time_travel/restore", params={"bookmark": "bogus"}), 400),
        (
            await http.get("/client/v4/user/tokens/verify", headers={"Authorization": "Bearer x"}),
            401,
        ),
        (await http.get(f"/client/v4/accounts/{'f' * 32}/workers/scripts/tax-api/versions"), 403),
    ]
    assert [r.status_code for r, _ in refusals] == [want for _, want in refusals]
    assert state.contract_violations == []


async def test_contract_violations_are_recorded(
    http: httpx.AsyncClient, cf_server: SimServer
) -> None:
    vid = cf_server.state.version_id("tax-api", "v1.4.2")
    body = {"strategy": "all-at-once", "versions": [{"version_id": vid}]}

    response = await deploy(http, cf_server, body)

    assert response.status_code == 400
    assert codes(response) == [10021]
    violations = cf_server.state.contract_violations
    assert any("body" in v and "all-at-once" in v for v in violations)
    assert any("'percentage' is a required property" in v for v in violations)
    violations.clear()  # recorded on purpose; the fixture checks for unexpected ones


async def test_malformed_json_is_refused(http: httpx.AsyncClient, cf_server: SimServer) -> None:
    response = await http.post(
        f"{account(cf_server)}/workers/scripts/tax-api/deployments",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert codes(response) == [10021]
    assert "JSON" in response.json()["errors"][0]["message"]
    assert cf_server.state.deployment_posts == [
        {"script": "tax-api", "force": False, "body": "{not json"}
    ]
    assert cf_server.state.contract_violations == [
        "POST /accounts/{account_id}/workers/scripts/{script_name}/deployments request: "
        "the body is not valid JSON"
    ]
    cf_server.state.contract_violations.clear()


@pytest.mark.parametrize(
    ("shares", "words"),
    [
        ([60, 60], "add up to 100"),
        ([50, 30, 20], "one or two versions"),
    ],
)
async def test_split_rules_the_schema_cannot_express(
    http: httpx.AsyncClient, cf_server: SimServer, shares: list[int], words: str
) -> None:
    state = cf_server.state
    vids = [state.version_id("tax-api", t) for t in ("v1.4.2", "v1.4.1", "v1.4.0")]
    body = {
        "strategy": "percentage",
        "versions": [
            {"version_id": vid, "percentage": p} for vid, p in zip(vids, shares, strict=False)
        ],
    }

    response = await deploy(http, cf_server, body)

    assert response.status_code == 400
    assert codes(response) == [10021]
    assert words in response.json()["errors"][0]["message"]
    assert len(state.script("tax-api").deployments) == 1


async def test_only_the_last_100_versions_are_deployable(
    http: httpx.AsyncClient, cf_server: SimServer
) -> None:
    state = cf_server.state
    oldest = state.version_id("tax-api", "v1.4.0")
    second = state.version_id("tax-api", "v1.4.1")
    for n in range(99):
        state.upload_version("tax-api", tag=f"build-{n}")
    # 102 versions: v1.4.0 and v1.4.1 have dropped out of the newest 100
    body = {"strategy": "percentage", "versions": [{"version_id": oldest, "percentage": 100}]}

    response = await deploy(http, cf_server, body)

    assert response.status_code == 400
    assert "last 100 versions" in response.json()["errors"][0]["message"]
    listed = await http.get(
        f"{account(cf_server)}/workers/scripts/tax-api/versions", params={"deployable": "true"}
    )
    deployable = [item["id"] for item in listed.json()["result"]["items"]]
    assert len(deployable) == 100
    assert oldest not in deployable and second not in deployable


async def test_control_endpoints(http: httpx.AsyncClient, cf_server: SimServer) -> None:
    state = cf_server.state
    overview = (await http.get("/__sim/state")).json()
    assert [s["name"] for s in overview["scripts"]] == [
        "tax-api",
        "tax-api-staging",
        "tax-web",
        "tax-web-staging",
    ]

    uploaded = await http.post(
        "/__sim/scripts/tax-api/versions", json={"tag": "v1.5.0", "message": "New"}
    )
    vid = uploaded.json()["id"]
    assert state.version_id("tax-api", "v1.5.0") == vid

    changed = await http.post(
        f"/__sim/scripts/tax-api/versions/{vid}", json={"error_rate": 0.25, "healthy": False}
    )
    assert changed.json()["error_rate"] == 0.25 and changed.json()["healthy"] is False

    stable = state.version_id("tax-api", "v1.4.1")
    direct = await http.post(
        "/__sim/scripts/tax-api/deployments",
        json={"versions": [{"version_id": vid, "percentage": 5}, [stable, 95]]},
    )
    assert state.script("tax-api").deployments[0].id == direct.json()["id"]
    assert state.script("tax-api").deployments[0].source == "wrangler"

    await http.post("/__sim/scripts/tax-api/traffic", json={"requests_per_second": 3})
    assert state.script("tax-api").traffic_rps == 3

    await http.post(
        "/__sim/faults", json={"method": "GET", "path_regex": "versions", "status": 503}
    )
    assert (await http.get("/__sim/faults")).json()["faults"][0]["status"] == 503
    await http.delete("/__sim/faults")
    assert state.faults == []

    assert (await http.post("/__sim/scripts", json={"name": "Bad Name"})).status_code == 400
    assert (await http.get("/__sim/scripts/nope/versions")).status_code == 404
    assert (await http.get("/__sim/contract_violations")).json() == {"contract_violations": []}

    reset = await http.post("/__sim/reset", json={"seed": False})
    assert reset.json()["scripts"] == []
    assert state.scripts == {}


async def test_fault_injection_through_control_endpoint(
    http: httpx.AsyncClient, cf_server: SimServer
) -> None:
    await http.post(
        "/__sim/faults",
        json={"path_regex": "deployments$", "status": 429, "retry_after": 7, "count": 2},
    )
    path = f"{account(cf_server)}/workers/scripts/tax-api/deployments"

    first, second, third = [await http.get(path) for _ in range(3)]

    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["retry-after"] == "7"
    assert codes(first) == [10429]  # the contract's codes start at 1000


async def test_worker_splits_traffic_deterministically(
    http: httpx.AsyncClient, cf_server: SimServer
) -> None:
    state = cf_server.state
    new, stable = state.version_id("tax-api", "v1.4.2"), state.version_id("tax-api", "v1.4.1")
    state.deploy_direct("tax-api", [(new, 10), (stable, 90)])

    served = [(await http.get("/__workers/tax-api/healthz")).json()["version"] for _ in range(100)]

    assert served.count(new) == 10 and served.count(stable) == 90


async def test_worker_health_and_override(http: httpx.AsyncClient, cf_server: SimServer) -> None:
    state = cf_server.state
    old = state.version_id("tax-api", "v1.4.0")
    stable = state.version_id("tax-api", "v1.4.1")
    state.set_healthy("tax-api", old, False)
    override = {"Cloudflare-Workers-Version-Overrides": f'tax-api="{old}"'}

    # not in the deployment: Cloudflare ignores the override and the split answers
    ignored = await http.get("/__workers/tax-api/healthz", headers=override)
    state.deploy_direct("tax-api", [(old, 0), (stable, 100)])
    pinned = await http.get("/__workers/tax-api/healthz", headers=override)
    default = await http.get("/__workers/tax-api/healthz")
    unknown = await http.get("/__workers/nope/healthz")

    assert ignored.status_code == 200 and ignored.json()["version"] == stable
    assert pinned.status_code == 500 and pinned.json()["version"] == old
    assert default.status_code == 200 and default.json()["ok"] is True
    assert unknown.status_code == 404


async def graphql(http: httpx.AsyncClient, query: str, variables: Any = None) -> Any:
    response = await http.post("/client/v4/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200
    return response.json()


async def test_graphql_literal_filters_and_errors(
    http: httpx.AsyncClient, cf_server: SimServer
) -> None:
    state = cf_server.state
    seeded = state.script("tax-api").active
    assert seeded is not None
    start = seeded.created_on.replace(microsecond=0)
    literal = METRICS_QUERY.replace("$a", f'"{state.account_id}"').replace("$s", '"tax-api"')
    window = {"from": start.isoformat(), "to": (start + timedelta(minutes=1)).isoformat()}

    body = await graphql(http, literal, window)
    rows = body["data"]["viewer"]["accounts"][0]["workersInvocationsAdaptive"]
    assert body["errors"] is None
    assert [r["dimensions"]["scriptVersion"] for r in rows] == [seeded.versions[0][0]]

    missing = await graphql(http, METRICS_QUERY, {"a": state.account_id})
    assert missing["data"] is None
    assert "variable $s is used but not given" in missing["errors"][0]["message"]

    months = {"from": "2030-01-01T00:00:00Z", "to": "2030-03-01T00:00:00Z"}
    too_long = await graphql(http, METRICS_QUERY, {"a": state.account_id, "s": "tax-api", **months})
    assert "31 days" in too_long["errors"][0]["message"]

    other = await graphql(
        http, "{ viewer { zones { httpRequests1dGroups { sum { requests } } } } }"
    )
    assert "workersInvocationsAdaptive" in other["errors"][0]["message"]


async def test_d1_runs_real_sql_and_time_travel_restores_it(
    http: httpx.AsyncClient, cf_server: SimServer
) -> None:
    state = cf_server.state
    d1 = f"{account(cf_server)}/d1/database/{EXAMPLE_DATABASE_ID}"
    before = (await http.get(f"{d1}/time_travel/bookmark")).json()["result"]["bookmark"]

    made = await http.post(
        f"{d1}/query",
        json={
            "sql": "CREATE TABLE returns (id INTEGER PRIMARY KEY, year INT);\n"
            "INSERT INTO returns (year) VALUES (2025), (2026);\n"
            "CREATE TRIGGER stamp AFTER INSERT ON returns BEGIN SELECT 1; END;"
        },
    )
    assert made.status_code == 200, made.text
    assert [r["meta"]["changes"] for r in made.json()["result"]] == [0, 2, 0]
    after = (await http.get(f"{d1}/time_travel/bookmark")).json()["result"]["bookmark"]
    assert after != before

    read = await http.post(
        f"{d1}/query", json={"sql": "SELECT year FROM returns WHERE year > ?", "params": ["2025"]}
    )
    assert read.json()["result"][0]["results"] == [{"year": 2026}]
    assert (await http.get(d1)).json()["result"]["num_tables"] == 1

    # a failing statement keeps nothing of its batch and says SQLite's words
    broken = await http.post(
        f"{d1}/query", json={"sql": "INSERT INTO returns (year) VALUES (2027); SELECT * FROM nope;"}
    )
    assert broken.status_code == 400 and codes(broken) == [7500]
    assert "no such table: nope" in broken.json()["errors"][0]["message"]
    count = await http.post(f"{d1}/query", json={"sql": "SELECT count(*) AS n FROM returns"})
    assert count.json()["result"][0]["results"] == [{"n": 2}]
    # the batch is D1's transaction: a query may not end it (and keep half of itself) or
    # open its own
    for sql in (
        "INSERT INTO returns (year) VALUES (2028); COMMIT; INSERT INTO nope VALUES (1);",
        "BEGIN; INSERT INTO returns (year) VALUES (2029);",
        "SAVEPOINT s; INSERT INTO returns (year) VALUES (2030); RELEASE s;",
    ):
        refused = await http.post(f"{d1}/query", json={"sql": sql})
        assert refused.status_code == 400 and codes(refused) == [7500], sql
    count = await http.post(f"{d1}/query", json={"sql": "SELECT count(*) AS n FROM returns"})
    assert count.json()["result"][0]["results"] == [{"n": 2}]

    restored = await http.post(f"{d1}/time_travel/restore", params={"bookmark": before})
    assert restored.json()["result"]["previous_bookmark"] == after
    gone = await http.post(f"{d1}/query", json={"sql": "SELECT * FROM returns"})
    assert gone.status_code == 400 and "no such table: returns" in gone.text
    assert state.contract_violations == []


async def test_d1_takes_at_most_ten_restores_in_ten_minutes(
    http: httpx.AsyncClient, cf_server: SimServer
) -> None:
    state = cf_server.state
    d1 = f"{account(cf_server)}/d1/database/{EXAMPLE_DATABASE_ID}"
    bookmark = (await http.get(f"{d1}/time_travel/bookmark")).json()["result"]["bookmark"]
    start = datetime.now(UTC)
    now = [start]
    state.clock = lambda: now[0]
    for i in range(10):
        now[0] = start + timedelta(seconds=30 * i)
        ok = await http.post(f"{d1}/time_travel/restore", params={"bookmark": bookmark})
        assert ok.status_code == 200, ok.text
    now[0] = start + timedelta(minutes=5)
    refused = await http.post(f"{d1}/time_travel/restore", params={"bookmark": bookmark})
    assert refused.status_code == 429 and refused.json()["success"] is False
    assert "try again in 300 s" in refused.json()["errors"][0]["message"]
    # the oldest restore leaves the window ten minutes after it was made
    now[0] = start + timedelta(minutes=10, seconds=1)
    again = await http.post(f"{d1}/time_travel/restore", params={"bookmark": bookmark})
    assert again.status_code == 200, again.text
