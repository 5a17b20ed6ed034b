"""Retries, backoff and deployment idempotency against injected faults on a live simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bot.cloudflare.client import CloudflareClient
from bot.engine.errors import EdgeUnavailable
from bot.engine.model import VersionShare

if TYPE_CHECKING:
    from tests.fixtures.cloudflare import RecordingSleep, SimServer


DEPLOYMENTS = r"/workers/scripts/tax-api/deployments$"
VERSIONS = r"/workers/scripts/tax-api/versions$"


def canary(server: SimServer) -> tuple[VersionShare, VersionShare]:
    state = server.state
    return (
        VersionShare(state.version_id("tax-api", "v1.4.2"), 10),
        VersionShare(state.version_id("tax-api", "v1.4.1"), 90),
    )


def calls(server: SimServer, method: str) -> list[dict]:
    """Logged requests to tax-api's deployments with ``method``."""
    return [
        r
        for r in server.state.requests_log
        if r["method"] == method and r["path"].endswith("/tax-api/deployments")
    ]


def deployments_of(server: SimServer) -> int:
    return len(server.state.script("tax-api").deployments)


async def test_429_waits_at_least_retry_after(
    cf_client: CloudflareClient, cf_server: SimServer, cf_sleep: RecordingSleep
) -> None:
    cf_server.state.inject("GET", DEPLOYMENTS, 429, retry_after=2)

    active = await cf_client.active_deployment("tax-api")

    assert active is not None
    assert len(cf_sleep.calls) == 1
    assert cf_sleep.calls[0] >= 2


async def test_backoff_grows_between_5xx_attempts(
    cf_client_factory, cf_server: SimServer, cf_sleep: RecordingSleep
) -> None:
    client = cf_client_factory(backoff_base=1.0, jitter=lambda: 1.0, max_attempts=4)
    cf_server.state.inject("GET", VERSIONS, 503, count=3)

    versions = await client.list_versions("tax-api")

    assert len(versions) == 3
    assert cf_sleep.calls == [1.0, 2.0, 4.0]


async def test_5xx_every_time_gives_up_in_words(
    cf_client_factory, cf_server: SimServer, cf_sleep: RecordingSleep
) -> None:
    client = cf_client_factory(max_attempts=3)
    cf_server.state.inject("GET", DEPLOYMENTS, 503, count=3)

    with pytest.raises(EdgeUnavailable) as caught:
        await client.list_deployments("tax-api")

    assert str(caught.value).startswith(
        "Cloudflare answered 503 three times while listing the deployments of tax-api"
    )
    assert len(cf_sleep.calls) == 2  # no pause after the last attempt


async def test_timeout_is_retried(
    cf_client_factory, cf_server: SimServer, cf_sleep: RecordingSleep
) -> None:
    client = cf_client_factory(timeout=0.2)
    cf_server.state.inject("GET", VERSIONS, None, delay=0.5)

    versions = await client.list_versions("tax-api")

    assert [v.tag for v in versions] == ["v1.4.2", "v1.4.1", "v1.4.0"]
    assert len(cf_sleep.calls) == 1


async def test_timeouts_every_time(cf_client_factory, cf_server: SimServer) -> None:
    client = cf_client_factory(timeout=0.15, max_attempts=2)
    cf_server.state.inject("GET", VERSIONS, None, delay=0.4, count=2)

    with pytest.raises(EdgeUnavailable, match="Cloudflare timed out twice while listing"):
        await client.list_versions("tax-api")


async def test_retry_after_beyond_the_limit_gives_up_at_once(
    cf_client: CloudflareClient, cf_server: SimServer, cf_sleep: RecordingSleep
) -> None:
    cf_server.state.inject("GET", DEPLOYMENTS, 429, retry_after=300)

    with pytest.raises(EdgeUnavailable, match="asked to wait 300 s"):
        await cf_client.list_deployments("tax-api")
    assert cf_sleep.calls == []


async def test_lost_response_after_applied_post_gives_one_deployment(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    split = canary(cf_server)
    before = deployments_of(cf_server)
    cf_server.state.inject("POST", DEPLOYMENTS, 502, apply_first=True)

    deployment = await cf_client.deploy("tax-api", split, "canary 10%")

    assert deployment.same_split(split)
    assert deployments_of(cf_server) == before + 1
    assert len(cf_server.state.deployment_posts) == 1
    assert cf_server.state.script("tax-api").deployments[0].id == deployment.id


async def test_timed_out_post_that_landed_is_not_repeated(
    cf_client_factory, cf_server: SimServer
) -> None:
    client = cf_client_factory(timeout=0.2)
    split = canary(cf_server)
    before = deployments_of(cf_server)
    cf_server.state.inject("POST", DEPLOYMENTS, None, delay=0.5, apply_first=True)

    deployment = await client.deploy("tax-api", split, "canary 10%")

    assert deployment.same_split(split)
    assert deployments_of(cf_server) == before + 1
    assert len(cf_server.state.deployment_posts) == 1


async def test_5xx_before_processing_posts_again(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    split = canary(cf_server)
    before = deployments_of(cf_server)
    cf_server.state.inject("POST", DEPLOYMENTS, 503)

    deployment = await cf_client.deploy("tax-api", split, "canary 10%")

    assert deployment.same_split(split)
    assert deployments_of(cf_server) == before + 1
    # the injected 503 stood in front of the API: one POST reached it, one was answered
    assert len(cf_server.state.deployment_posts) == 1
    posts = [
        r
        for r in cf_server.state.requests_log
        if r["method"] == "POST" and "deployments" in r["path"]
    ]
    assert [p["status"] for p in posts] == [503, 200]


async def test_429_on_post_is_repeated_without_checking(
    cf_client: CloudflareClient, cf_server: SimServer, cf_sleep: RecordingSleep
) -> None:
    split = canary(cf_server)
    before = deployments_of(cf_server)
    cf_server.state.inject("POST", DEPLOYMENTS, 429, retry_after=1)

    await cf_client.deploy("tax-api", split, "canary 10%")

    assert deployments_of(cf_server) == before + 1
    reads = [
        r
        for r in cf_server.state.requests_log
        if r["method"] == "GET" and "deployments" in r["path"]
    ]
    assert len(reads) == 1  # the read before the first POST, none after the 429
    assert cf_sleep.calls[0] >= 1


async def test_same_split_already_active_is_not_mistaken_for_ours(
    cf_client: CloudflareClient, cf_server: SimServer
) -> None:
    # the split asked for is the one already serving: a 502 must not be read as success
    stable = cf_server.state.version_id("tax-api", "v1.4.1")
    before = deployments_of(cf_server)
    cf_server.state.inject("POST", DEPLOYMENTS, 502)

    deployment = await cf_client.deploy("tax-api", [VersionShare(stable, 100)], "redeploy")

    assert deployments_of(cf_server) == before + 1
    assert cf_server.state.script("tax-api").deployments[0].id == deployment.id


async def test_deploy_gives_up_when_cloudflare_stays_down(
    cf_client_factory, cf_server: SimServer
) -> None:
    client = cf_client_factory(max_attempts=2)
    cf_server.state.inject("POST", DEPLOYMENTS, 503, count=2)

    with pytest.raises(EdgeUnavailable, match="Cloudflare answered 503 twice while deploying"):
        await client.deploy("tax-api", canary(cf_server), "canary")
    assert deployments_of(cf_server) == 1


async def test_health_probe_timeout(cf_client: CloudflareClient, cf_server: SimServer) -> None:
    cf_server.state.inject("GET", r"^/__workers/tax-api/", None, delay=0.5)

    ok, status, detail = await cf_client.health_probe(
        f"{cf_server.url}/__workers/tax-api/healthz", timeout=0.1
    )

    assert (ok, status) == (False, None)
    assert "within 0.1 s" in detail
