"""GitHub's REST contract the stand-in is held to, and the client's retry rules on scripted
answers."""

from __future__ import annotations

import json

import httpx
import pytest
from openapi_spec_validator import validate
from pydantic import SecretStr

from bot.engine.errors import SourceUnavailable
from bot.github.client import GitHubClient
from bot.github.contract import SUBSET, load
from bot.github.transport import judge
from tests.fixtures.cloudflare import RecordingSleep

REPO = "/repos/battleborn/tax-api"


def test_subset_is_valid_openapi_and_says_where_it_is_from() -> None:
    spec = json.loads(SUBSET.read_text())
    validate(spec)
    source = spec["x-subset-source"]
    assert source["repository"] == "https://github.com/github/rest-api-description"
    assert source["note"].startswith("REDUCED BY HAND, NOT VERBATIM")
    assert source["operations"] == sorted(
        op["operationId"] for item in spec["paths"].values() for op in item.values()
    )


def test_every_operation_the_client_reads_is_in_the_contract() -> None:
    contract = load()
    for path in (
        f"{REPO}/commits/abc/check-runs",
        f"{REPO}/commits/abc/status",
        f"{REPO}/commits/abc/pulls",
        f"{REPO}/pulls/3/reviews",
        f"{REPO}/compare/a...b",
        f"{REPO}/contents/migrations/0001_init.sql",  # a file's path spans segments
    ):
        assert contract.find("GET", path) is not None, path
    assert contract.find("POST", f"{REPO}/commits/abc/check-runs") is None


def test_a_wrong_answer_is_caught() -> None:
    contract = load()
    op, _ = contract.find("GET", f"{REPO}/commits/abc/check-runs") or pytest.fail("no op")
    run = {
        "id": 1,
        "node_id": "x",
        "head_sha": "abc",
        "name": "ci",
        "url": "u",
        "html_url": None,
        "details_url": None,
        "status": "done",
        "conclusion": "success",
        "started_at": None,
        "completed_at": None,
        "external_id": None,
        "pull_requests": [],
    }
    problems = contract.check_response(op, 200, {"total_count": 1, "check_runs": [run]})
    assert len(problems) == 1 and "'done' is not one of" in problems[0]
    assert contract.check_response(op, 418, {}) == [
        "GET /repos/{owner}/{repo}/commits/{ref}/check-runs response 418: "
        "status 418 is not in the contract"
    ]


def answer(status: int, headers: dict[str, str] | None = None, message: str = "") -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, json={"message": message})


@pytest.mark.parametrize(
    ("response", "wait", "limited"),
    [
        (answer(403, {"retry-after": "30"}), 30.0, True),
        (answer(429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1010"}), 11.0, True),
        (answer(403, message="You have exceeded a secondary rate limit."), 60.0, True),
        (answer(429), 60.0, True),
        (answer(403, {"x-ratelimit-remaining": "12"}, "Resource not accessible"), None, False),
        (answer(502), None, False),
    ],
)
def test_rate_limits_as_github_documents_them(
    response: httpx.Response, wait: float | None, limited: bool
) -> None:
    verdict = judge(response, now=1000.0)
    assert (verdict.wait, verdict.rate_limited) == (wait, limited)
    assert verdict.final is (response.status_code == 403 and not limited)


def scripted(answers: list[httpx.Response | Exception]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-github-api-version"] == "2022-11-28"
        item = answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.MockTransport(handler)


def client(answers: list[httpx.Response | Exception], sleep: RecordingSleep) -> GitHubClient:
    return GitHubClient(
        "https://api.github.com",
        SecretStr("t"),
        transport=scripted(answers),
        reads=5.0,
        sleep=sleep,
        monotonic=sleep.monotonic,
        jitter=lambda: 0.0,
    )


async def test_5xx_and_timeouts_are_retried_until_the_deadline() -> None:
    sleep = RecordingSleep()
    runs = {"total_count": 0, "check_runs": []}
    answers: list[httpx.Response | Exception] = [
        answer(502),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=runs),
    ]
    async with client(answers, sleep) as gh:
        assert await gh.check_runs("battleborn/tax-api", "abc") == []
    assert sleep.calls == [0.25, 0.5]
    sleep = RecordingSleep()
    async with client([answer(503)] * 20, sleep) as gh:
        with pytest.raises(SourceUnavailable, match="retry budget is spent") as caught:
            await gh.check_runs("battleborn/tax-api", "abc")
    assert not caught.value.rate_limited and sum(sleep.calls) <= 5.0
