"""CloudflareClient against the simulator over real HTTP: every method, and how Cloudflare's
refusals reach the engine."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from pydantic import SecretStr

from bot.cloudflare.client import CloudflareClient
from bot.cloudflare.sim_state import EXAMPLE_DATABASE_ID
from bot.engine.errors import EdgeRejected
from bot.engine.model import VersionReport, VersionShare

if TYPE_CHECKING:
    from tests.fixtures.cloudflare import SimServer


def ids(server: SimServer, script: str = "tax-api") -> dict[str, str]:
    return {tag: server.state.version_id(script, tag) for tag in ("v1.4.0", "v1.4.1", "v1.4.2")}


async def test_list_versions_newest_first_with_annotations(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    versions = await cf_client.list_versions("tax-api")

    assert [v.tag for v in versions] == ["v1.4.2", "v1.4.1", "v1.4.0"]
    assert [v.number for v in versions] == [3, 2, 1]
    newest = versions[0]
    assert newest.id == ids(cf_server)["v1.4.2"]
    assert newest.message == "Faster receipt search"
    assert newest.author_email == "ana@example.com"
    assert newest.source == "wrangler"
    assert newest.created_on is not None and newest.created_on.utcoffset() == timedelta(0)
    assert versions[0].created_on > versions[1].created_on > versions[2].created_on


async def test_list_versions_follows_pages(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    for n in range(120):
        cf_server.state.upload_version("tax-web", tag=f"b{n}")

    versions = await cf_client.list_versions("tax-web")

    assert len(versions) == 123
    assert [v.number for v in versions] == list(range(123, 0, -1))
    pages = [r["query"] for r in cf_server.state.requests_log if r["path"].endswith("/versions")]
    assert pages == ["page=1&per_page=50", "page=2&per_page=50", "page=3&per_page=50"]


async def test_get_version_and_unknown_version(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    wanted = ids(cf_server)["v1.4.0"]
    version = await cf_client.get_version("tax-api", wanted)
    assert (version.id, version.tag, version.number) == (wanted, "v1.4.0", 1)

    with pytest.raises(EdgeRejected) as caught:
        await cf_client.get_version("tax-api", "00000000-0000-4000-8000-000000000000")
    assert caught.value.status == 404
    assert caught.value.codes == [10007]
    assert "not found" in str(caught.value)


async def test_unknown_script_is_not_found(cf_client: CloudflareClient) -> None:
    with pytest.raises(EdgeRejected) as caught:
        await cf_client.list_deployments("no-such-worker")
    assert caught.value.codes == [10007]
    assert "listing the deployments of no-such-worker" in str(caught.value)
    assert "does not exist" in str(caught.value)


async def test_deployments_and_active(cf_client: CloudflareClient, cf_server: SimServer) -> None:
    stable = ids(cf_server)["v1.4.1"]
    active = await cf_client.active_deployment("tax-api")
    assert active is not None
    assert active.stable_version_id == stable
    assert active.author_email == "ben@example.com"
    assert active.message == "Release v1.4.1"
    assert active.created_on is not None and active.created_on.tzinfo is not None

    cf_server.state.add_script("fresh")
    assert await cf_client.active_deployment("fresh") is None
    assert await cf_client.list_deployments("fresh") == []


async def test_deploy_split_and_truncated_message(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    v = ids(cf_server)
    split = (VersionShare(v["v1.4.2"], 10), VersionShare(v["v1.4.1"], 90))
    message = "R-42 canary of v1.4.2 requested by alice for the quarterly filing fix"

    deployment = await cf_client.deploy("tax-api", split, message)

    assert deployment.same_split(split)
    assert deployment.source == "api"
    assert deployment.message is not None and len(deployment.message) == 50
    assert deployment.message.startswith("R-42 canary of v1.4.2")
    assert cf_server.state.active_split("tax-api") == [(v["v1.4.2"], 10.0), (v["v1.4.1"], 90.0)]
    [post] = cf_server.state.deployment_posts
    assert post["body"]["strategy"] == "percentage"
    assert post["body"]["versions"] == [
        {"version_id": v["v1.4.2"], "percentage": 10},
        {"version_id": v["v1.4.1"], "percentage": 90},
    ]
    assert post["force"] is False
    assert (await cf_client.active_deployment("tax-api")) == deployment


@pytest.mark.parametrize(
    ("percentages", "words"),
    [
        ((50, 30, 20), "one or two versions"),
        ((60, 60), "add up to 120%"),
        ((101, -1), "between 0% and 100%"),
        ((), "one or two versions"),
    ],
)
async def test_deploy_checks_the_split_before_sending(
    cf_client: CloudflareClient, cf_server: SimServer, percentages: tuple[int, ...], words: str
) -> None:
    versions = list(ids(cf_server).values())
    split = [VersionShare(versions[i], p) for i, p in enumerate(percentages)]
    before = len(cf_server.state.requests_log)

    with pytest.raises(EdgeRejected, match=words):
        await cf_client.deploy("tax-api", split, "bad split")

    assert cf_server.state.deployment_posts == []
    assert len(cf_server.state.requests_log) == before


async def test_a_version_at_0_percent_is_sent_as_wrangler_sends_it(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    v = ids(cf_server)
    split = [VersionShare(v["v1.4.2"], 0), VersionShare(v["v1.4.1"], 100)]

    deployment = await cf_client.deploy("tax-api", split, "R-42 smoke test v1.4.2")

    [post] = cf_server.state.deployment_posts
    assert post["body"]["versions"] == [
        {"version_id": v["v1.4.2"], "percentage": 0},
        {"version_id": v["v1.4.1"], "percentage": 100},
    ]
    assert deployment.share_of(v["v1.4.2"]) == 0 and deployment.stable_version_id is None


async def test_deploy_same_version_twice_is_refused(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    vid = ids(cf_server)["v1.4.2"]
    with pytest.raises(EdgeRejected, match="same version twice"):
        await cf_client.deploy("tax-api", [VersionShare(vid, 50), VersionShare(vid, 50)], "x")


async def test_secret_change_needs_forced_deployment(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    old = ids(cf_server)["v1.4.1"]
    cf_server.state.mark_secret_changed("tax-api")

    with pytest.raises(EdgeRejected) as caught:
        await cf_client.deploy("tax-api", [VersionShare(old, 100)], "rollback")
    assert caught.value.codes == [10220]
    assert caught.value.status == 400
    assert "secrets changed since that version" in str(caught.value)
    assert "forced deployment is needed" in str(caught.value)

    deployment = await cf_client.deploy("tax-api", [VersionShare(old, 100)], "rollback", force=True)
    assert deployment.stable_version_id == old
    assert [p["force"] for p in cf_server.state.deployment_posts] == [False, True]


async def test_deploy_unknown_version_is_rejected(cf_client: CloudflareClient) -> None:
    with pytest.raises(EdgeRejected) as caught:
        await cf_client.deploy(
            "tax-api", [VersionShare("00000000-0000-4000-8000-000000000000", 100)], "x"
        )
    assert caught.value.codes == [10007]


async def test_d1_bookmark_and_restore(cf_client: CloudflareClient, cf_server: SimServer) -> None:
    before_release = await cf_client.d1_bookmark(EXAMPLE_DATABASE_ID)
    after_writes = cf_server.state.d1_write(EXAMPLE_DATABASE_ID)

    previous = await cf_client.d1_restore(EXAMPLE_DATABASE_ID, before_release)

    assert previous == after_writes
    current = await cf_client.d1_bookmark(EXAMPLE_DATABASE_ID)
    assert current not in (before_release, after_writes)


async def test_d1_unknown_database(cf_client: CloudflareClient) -> None:
    with pytest.raises(EdgeRejected) as caught:
        await cf_client.d1_bookmark("11111111-2222-4333-8444-555555555555")
    assert caught.value.status == 404


async def test_verify_token(cf_client: CloudflareClient, cf_server: SimServer) -> None:
    assert await cf_client.verify_token() == "active"
    cf_server.state.token_status = "disabled"
    assert await cf_client.verify_token() == "disabled"


async def test_wrong_token_is_reported_without_the_token(
    cf_client_factory, cf_server: SimServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-right-token-987654321"
    client = cf_client_factory(api_token=wrong)
    caplog.set_level(logging.DEBUG, logger="releasebot.cloudflare")

    with pytest.raises(EdgeRejected) as caught:
        await client.list_versions("tax-api")

    assert caught.value.status == 401
    assert caught.value.codes == [10000]
    assert "API token is invalid or lacks permission" in str(caught.value)
    assert wrong not in str(caught.value)
    assert wrong not in caplog.text and cf_server.token not in caplog.text
    assert "Bearer" not in caplog.text


async def test_other_account_is_refused(cf_client_factory) -> None:
    client = cf_client_factory(account_id="ffffffffffffffffffffffffffffffff")
    with pytest.raises(EdgeRejected) as caught:
        await client.list_deployments("tax-api")
    assert caught.value.status == 403
    assert caught.value.codes == [9109]
    assert "lacks permission" in str(caught.value)


async def test_version_metrics_follow_split_and_error_rates(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    state = cf_server.state
    v = ids(cf_server)
    # whole seconds: the analytics window is sent at one-second precision
    now = datetime.now(UTC).replace(microsecond=0)
    state.clock = lambda: now
    state.set_traffic("tax-api", 10)
    state.set_error_rate("tax-api", v["v1.4.2"], 0.05)
    state.set_error_rate("tax-api", v["v1.4.1"], 0.002)
    canary = await cf_client.deploy(
        "tax-api", [VersionShare(v["v1.4.2"], 10), VersionShare(v["v1.4.1"], 90)], "canary"
    )
    assert canary.created_on is not None
    since = canary.created_on
    until = since + timedelta(minutes=5)

    metrics = await cf_client.version_metrics("tax-api", since, until)

    new, stable = metrics[v["v1.4.2"]], metrics[v["v1.4.1"]]
    assert (new.requests, new.errors) == (300, 15)  # 10 rps * 300 s * 10%, 5% of it
    assert (stable.requests, stable.errors) == (2700, 5)  # 90%, round(2700 * 0.002)
    assert new.error_rate == pytest.approx(0.05)
    assert new.cpu_time_p50_us is not None and new.cpu_time_p99_us is not None
    assert v["v1.4.0"] not in metrics


async def test_version_metrics_weigh_each_deployment_by_its_time(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    state = cf_server.state
    v = ids(cf_server)
    state.set_traffic("tax-web", 2)
    web = {tag: state.version_id("tax-web", tag) for tag in ("v1.4.1", "v1.4.2")}
    seeded = state.script("tax-web").active
    assert seeded is not None
    start = (seeded.created_on + timedelta(hours=1)).replace(microsecond=0)
    state.deploy_direct(
        "tax-web",
        [(web["v1.4.2"], 50), (web["v1.4.1"], 50)],
        created_on=start + timedelta(seconds=100),
    )

    metrics = await cf_client.version_metrics("tax-web", start, start + timedelta(seconds=200))

    # 100 s all on v1.4.1 (200 requests), then 100 s split evenly (100 + 100)
    assert metrics[web["v1.4.1"]].requests == 300
    assert metrics[web["v1.4.2"]].requests == 100
    assert v["v1.4.2"] not in metrics  # tax-api's version ids are not tax-web's


async def test_graphql_errors_are_rejections(cf_client_factory) -> None:
    # GraphQL answers 200 with a top-level errors list; here the account is not the token's
    client = cf_client_factory(account_id="ffffffffffffffffffffffffffffffff")
    since = datetime(2026, 1, 1, tzinfo=UTC)

    with pytest.raises(EdgeRejected) as caught:
        await client.version_metrics("tax-api", since, since + timedelta(hours=1))

    assert caught.value.status == 200
    assert "not authorized for that account" in str(caught.value)


async def test_health_probe(cf_client: CloudflareClient, cf_server: SimServer) -> None:
    v = ids(cf_server)
    url = f"{cf_server.url}/__workers/tax-api/healthz"
    cf_server.state.set_healthy("tax-api", v["v1.4.2"], False)

    ok, status, detail = await cf_client.health_probe(url)
    assert (ok, status) == (True, 200)
    assert "answered 200" in detail

    # Cloudflare applies the override only to a version in the live deployment
    ok, status, detail = await cf_client.health_probe(url, ("tax-api", v["v1.4.2"]))
    assert (ok, status) == (True, 200)
    cf_server.state.deploy_direct("tax-api", [(v["v1.4.2"], 0), (v["v1.4.1"], 100)])
    ok, status, detail = await cf_client.health_probe(url, ("tax-api", v["v1.4.2"]))
    assert (ok, status) == (False, 500)
    assert "answered 500" in detail


async def test_version_probe_reads_who_answered(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    v = ids(cf_server)
    url = f"{cf_server.url}/__workers/tax-api/healthz"
    header, field = VersionReport(header="X-Worker-Version"), VersionReport(field="version")

    before = await cf_client.version_probe(url, "tax-api", v["v1.4.2"], header)
    cf_server.state.deploy_direct("tax-api", [(v["v1.4.2"], 0), (v["v1.4.1"], 100)])
    pinned = await cf_client.version_probe(url, "tax-api", v["v1.4.2"], field)
    unread = await cf_client.version_probe(url, "tax-api", v["v1.4.2"], VersionReport())
    cf_server.state.set_reports_version("tax-api", v["v1.4.2"], False)
    silent = await cf_client.version_probe(url, "tax-api", v["v1.4.2"], header)

    assert before.ok and before.version_id == v["v1.4.1"]  # the override was ignored
    assert pinned.ok and pinned.version_id == v["v1.4.2"]
    assert unread.ok and unread.version_id is None
    assert silent.ok and silent.version_id is None


async def test_health_probe_never_sends_the_token() -> None:
    seen: list[dict[str, str]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.headers))
        return httpx.Response(200, json={"ok": True})

    probe_only = CloudflareClient(
        "https://api.cloudflare.com/client/v4",
        SecretStr("probe-test-token"),
        "0123456789abcdef0123456789abcdef",
        transport=httpx.MockTransport(record),
    )
    async with probe_only:
        ok, status, _ = await probe_only.health_probe(
            "https://tax-api.example.workers.dev/healthz", ("tax-api", "abc")
        )
    assert (ok, status) == (True, 200)
    assert "authorization" not in {k.lower() for k in seen[0]}
    assert seen[0]["cloudflare-workers-version-overrides"] == 'tax-api="abc"'


async def test_health_probe_unreachable(cf_client: CloudflareClient) -> None:
    ok, status, detail = await cf_client.health_probe("http://127.0.0.1:9/healthz", timeout=1)
    assert (ok, status) == (False, None)
    assert "could not reach 127.0.0.1/healthz" in detail
