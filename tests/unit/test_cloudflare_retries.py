"""The client's retry policy and deployment idempotency, driven by scripted answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.cloudflare.client import CloudflareClient
from bot.engine.errors import EdgeRejected, EdgeUnavailable
from bot.engine.model import VersionShare

TOKEN = "unit-test-token-abcdef"
ACCOUNT = "0123456789abcdef0123456789abcdef"
BASE = "https://api.cloudflare.com/client/v4"
Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def ok(result: Any, **extra: Any) -> httpx.Response:
    return httpx.Response(
        200, json={"success": True, "errors": [], "messages": [], "result": result, **extra}
    )


def deployments(*items: dict[str, Any]) -> httpx.Response:
    return ok({"deployments": list(items)})


def deployment(did: str, *shares: tuple[str, float]) -> dict[str, Any]:
    return {
        "id": did,
        "strategy": "percentage",
        "versions": [{"version_id": v, "percentage": p} for v, p in shares],
    }


class Script:
    """A transport answering from a list, recording each request as ``METHOD path``."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.seen: list[str] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path.removeprefix('/client/v4')}")
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer


class FakeTime:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(script: Script, sleeps: list[float], **options: Any) -> CloudflareClient:
    clock = options.pop("clock", None) or FakeTime()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    options.setdefault("jitter", lambda: 0.0)
    return CloudflareClient(
        BASE,
        SecretStr(TOKEN),
        ACCOUNT,
        transport=httpx.MockTransport(script),
        sleep=sleep,
        monotonic=clock,
        **options,
    )


DEPLOYS = f"/accounts/{ACCOUNT}/workers/scripts/tax-api/deployments"
SPLIT = (VersionShare("new", 10), VersionShare("old", 90))


async def test_connect_error_on_post_is_retried_without_a_check() -> None:
    script = Script(
        deployments(deployment("d1", ("old", 100))),
        httpx.ConnectError("refused"),
        ok(deployment("d2", ("new", 10), ("old", 90))),
    )
    sleeps: list[float] = []
    async with client(script, sleeps) as cf:
        result = await cf.deploy("tax-api", SPLIT, "canary")
    assert result.id == "d2"
    assert script.seen == [f"GET {DEPLOYS}", f"POST {DEPLOYS}", f"POST {DEPLOYS}"]
    assert sleeps == [0.25]  # equal jitter at its low end: half of backoff_base


async def test_timeout_on_post_checks_before_posting_again() -> None:
    script = Script(
        deployments(deployment("d1", ("old", 100))),
        httpx.ReadTimeout("slow"),
        deployments(deployment("d1", ("old", 100))),  # it did not land
        ok(deployment("d2", ("new", 10), ("old", 90))),
    )
    # one look (no window to watch it land later: see test_cloudflare_deadlines)
    async with client(script, [], landing_window=0) as cf:
        result = await cf.deploy("tax-api", SPLIT, "canary")
    assert result.id == "d2"
    assert script.seen == [f"GET {DEPLOYS}", f"POST {DEPLOYS}", f"GET {DEPLOYS}", f"POST {DEPLOYS}"]


async def test_a_check_that_fails_too_reports_the_split_as_unknown() -> None:
    script = Script(
        deployments(deployment("d1", ("old", 100))),
        httpx.Response(502),
        *[httpx.Response(503)] * 2,
    )
    async with client(script, [], max_attempts=2) as cf:
        with pytest.raises(EdgeUnavailable) as caught:
            await cf.deploy("tax-api", SPLIT, "canary")
    text = str(caught.value)
    assert text.startswith("Cloudflare answered 502 once while deploying new at 10%")
    assert "current split of tax-api is unknown" in text


async def test_force_and_message_reach_the_request() -> None:
    script = Script(deployments(), ok(deployment("d2", ("new", 100))))
    async with client(script, []) as cf:
        await cf.deploy("tax-api", [VersionShare("new", 100)], "x" * 70, force=True)
    post = script.requests[1]
    assert post.url.params["force"] == "true"
    body = json.loads(post.content)
    assert body == {
        "strategy": "percentage",
        "versions": [{"version_id": "new", "percentage": 100}],
        "annotations": {"workers/message": "x" * 49 + "…"},
    }


async def test_requests_carry_the_token_and_logs_never_do(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="releasebot.cloudflare")
    script = Script(
        httpx.Response(503, headers={"retry-after": "1"}),
        httpx.ReadTimeout("slow"),
        ok({"items": []}),
    )
    async with client(script, []) as cf:
        assert await cf.list_versions("tax-api") == []
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in script.requests)
    assert TOKEN not in caplog.text
    records = [r for r in caplog.records if r.name == "releasebot.cloudflare"]
    assert [getattr(r, "attempt", None) for r in records] == [1, 2, 3]
    assert (
        records[0].path_template == "/accounts/{account_id}/workers/scripts/{script_name}/versions"
    )
    assert records[0].status == 503 and records[0].http_method == "GET"
    assert all(isinstance(getattr(r, "elapsed_ms", None), int) for r in records)
    for record in records:
        assert TOKEN not in str(record.__dict__)


async def test_pages_without_result_info_stop_at_a_short_page() -> None:
    def page(n: int, count: int) -> httpx.Response:
        return ok({"items": [{"id": f"v{n}-{i}", "number": i} for i in range(count)]})

    script = Script(page(1, 50), page(2, 3))
    async with client(script, []) as cf:
        versions = await cf.list_versions("tax-api")
    assert len(versions) == 53
    assert [r.url.params["page"] for r in script.requests] == ["1", "2"]


async def test_restore_repeated_after_an_unclear_answer_returns_the_bookmark_read_first() -> None:
    script = Script(
        ok({"bookmark": "b-before"}),
        httpx.Response(502),
        ok({"bookmark": "b-new", "previous_bookmark": "b-after-first-restore"}),
    )
    async with client(script, []) as cf:
        assert await cf.d1_restore("db", "b-target") == "b-before"
    assert script.requests[1].url.params["bookmark"] == "b-target"


async def test_restore_answered_at_once_returns_cloudflares_previous_bookmark() -> None:
    script = Script(
        ok({"bookmark": "b-before"}),
        ok({"bookmark": "b-new", "previous_bookmark": "b-prev"}),
    )
    async with client(script, []) as cf:
        assert await cf.d1_restore("db", "b-target") == "b-prev"


async def test_unreadable_success_and_failed_envelope() -> None:
    script = Script(
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json={"success": False, "errors": [{"code": 10021, "message": "no"}]}),
    )
    async with client(script, []) as cf:
        with pytest.raises(EdgeUnavailable, match="could not be read: the body is not JSON"):
            await cf.list_deployments("tax-api")
        with pytest.raises(EdgeRejected, match=r"no \(code 10021\)"):
            await cf.list_deployments("tax-api")


async def test_path_values_are_quoted() -> None:
    script = Script(ok({"id": "a/b", "number": 1}))
    async with client(script, []) as cf:
        await cf.get_version("tax-api", "../../user/tokens/verify")
    assert (
        script.requests[0]
        .url.raw_path.decode()
        .endswith("/versions/..%2F..%2Fuser%2Ftokens%2Fverify")
    )


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CloudflareClient(BASE, SecretStr(TOKEN), ACCOUNT, max_attempts=0)


def test_backoff_is_capped_and_jittered() -> None:
    cf = CloudflareClient(
        BASE, SecretStr(TOKEN), ACCOUNT, backoff_base=1.0, backoff_cap=5.0, jitter=lambda: 1.0
    )
    retrier = cf._retrier
    assert [retrier.backoff(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    retrier._jitter = lambda: 0.0
    assert [retrier.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


async def test_long_retry_after_on_post_still_checks_whether_it_landed() -> None:
    landed = deployment("d2", ("new", 10), ("old", 90))
    script = Script(
        deployments(deployment("d1", ("old", 100))),
        httpx.Response(503, headers={"retry-after": "300"}),
        deployments(landed, deployment("d1", ("old", 100))),
    )
    sleeps: list[float] = []
    async with client(script, sleeps) as cf:
        result = await cf.deploy("tax-api", SPLIT, "canary")
    assert result.id == "d2"
    assert sleeps == []


async def test_long_retry_after_on_post_that_did_not_land_gives_up_at_once() -> None:
    script = Script(
        deployments(deployment("d1", ("old", 100))),
        httpx.Response(503, headers={"retry-after": "300"}),
        deployments(deployment("d1", ("old", 100))),
    )
    sleeps: list[float] = []
    async with client(script, sleeps) as cf:
        with pytest.raises(EdgeUnavailable, match="asked to wait 300 s"):
            await cf.deploy("tax-api", SPLIT, "canary")
    assert sleeps == []
    assert len(script.seen) == 3
