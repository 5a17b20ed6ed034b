"""Retries by deadline, on virtual time: a deployment request keeps trying for its budget,
honours Retry-After, tells who waits until when, and never becomes a second deployment when an
earlier attempt lands late."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from bot.cloudflare.transport import RetryBudgets
from bot.engine.errors import EdgeUnavailable
from bot.engine.model import VersionShare
from bot.engine.ports import EdgeCall, Urgency
from tests.fakecloud import Answer, FakeCloudflare, VirtualTime

NEW, OLD = "tax-api-v1.4.2", "tax-api-v1.4.1"
SPLIT = (VersionShare(NEW, 10), VersionShare(OLD, 90))
WANTED = ((NEW, 10.0), (OLD, 90.0))


def world() -> FakeCloudflare:
    cloud = FakeCloudflare(VirtualTime())
    cloud.add_script("tax-api")
    return cloud


def posts(cloud: FakeCloudflare) -> list[tuple[float, str]]:
    return [(s.at, s.answer) for s in cloud.seen if s.method == "POST"]


def blip(cloud: FakeCloudflare) -> None:
    """Deployment POSTs answer 500 three times, then 429 asking for 5 s, then 503 for 20 s."""
    state = {"n": 0, "first_503": None}

    def rule(c, method, kind, script, split):  # type: ignore[no-untyped-def]
        if method != "POST":
            return Answer()
        state["n"] += 1
        if state["n"] <= 3:
            return Answer(500)
        if state["n"] == 4:
            return Answer(429, retry_after=5)
        if state["first_503"] is None:
            state["first_503"] = c.time.t
        if c.time.t - state["first_503"] < 20:
            return Answer(503)
        return Answer()

    cloud.rule = rule


async def test_a_blip_of_500s_a_429_and_20_s_of_503s_ends_in_one_deployment() -> None:
    cloud = world()
    blip(cloud)
    told: list[datetime | None] = []

    async def busy(until: datetime | None) -> None:
        told.append(until)

    async with cloud.client() as cf:
        result = await cloud.time.run(
            cf.deploy("tax-api", SPLIT, "R-1 10% v1.4.2", call=EdgeCall(Urgency.STEP, busy))
        )

    assert result.versions == SPLIT
    assert cloud.made("tax-api") == [WANTED]  # one deployment, however many attempts
    answers = posts(cloud)
    assert [a for _, a in answers[:4]] == ["500", "500", "500", "429"]
    assert answers[-1][1] == "200" and all(a == "503" for _, a in answers[4:-1])
    assert answers[4][0] - answers[3][0] >= 5  # Retry-After honoured
    assert answers[-1][0] - answers[4][0] >= 20
    assert answers[-1][0] < 120  # well within the budget
    # told once, before the first wait, that it keeps trying until the call's deadline; and
    # once more when the call is over
    assert told == [cloud.time.start + timedelta(seconds=120), None]


async def test_when_the_budget_runs_out_it_gives_up_saying_how_long_it_tried() -> None:
    cloud = world()
    cloud.rule = lambda c, method, kind, script, split: Answer(503 if method == "POST" else None)
    async with cloud.client(budgets=RetryBudgets(steps=60, reads=10)) as cf:
        with pytest.raises(EdgeUnavailable) as caught:
            await cloud.time.run(cf.deploy("tax-api", SPLIT, "R-1 10%"))
    text = str(caught.value)
    assert "Cloudflare answered 503" in text and "while deploying" in text
    assert "its retry budget of 60 s is spent" in text
    assert not caught.value.rate_limited
    assert 40 <= posts(cloud)[-1][0] <= 60
    assert cloud.made("tax-api") == []


async def test_only_429s_are_reported_as_rate_limited() -> None:
    cloud = world()
    cloud.rule = lambda c, method, kind, script, split: Answer(429, retry_after=4)
    async with cloud.client(budgets=RetryBudgets(steps=120, reads=10)) as cf:
        with pytest.raises(EdgeUnavailable) as caught:
            await cloud.time.run(cf.list_versions("tax-api", EdgeCall(Urgency.READ)))
    assert caught.value.rate_limited
    assert "answered 429" in str(caught.value)
    # a read's budget is shorter: 10 s of 4-second waits is three attempts
    assert [s.at for s in cloud.seen] == [0.0, 4.0, 8.0]


async def test_a_retry_after_beyond_the_cap_ends_the_call_at_once() -> None:
    cloud = world()
    cloud.rule = lambda c, method, kind, script, split: Answer(429, retry_after=300)
    async with cloud.client(max_retry_after=60) as cf:
        with pytest.raises(EdgeUnavailable, match="asked to wait 300 s"):
            await cloud.time.run(cf.list_deployments("tax-api"))
    assert len(cloud.seen) == 1 and cloud.time.t == 0


async def test_a_retry_after_past_the_deadline_ends_the_call_without_waiting() -> None:
    cloud = world()
    cloud.rule = lambda c, method, kind, script, split: Answer(429, retry_after=50)
    async with cloud.client(budgets=RetryBudgets(steps=120, reads=20)) as cf:
        with pytest.raises(EdgeUnavailable, match="retry budget of 20 s is spent"):
            await cloud.time.run(cf.list_versions("tax-api", EdgeCall(Urgency.READ)))
    assert len(cloud.seen) == 1 and cloud.time.t == 0


async def test_a_post_that_times_out_and_lands_20_s_later_is_not_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cloud = world()
    sent = {"n": 0}

    def rule(c, method, kind, script, split):  # type: ignore[no-untyped-def]
        if method == "POST":
            sent["n"] += 1
            if sent["n"] == 1:
                return Answer(timeout=True, seconds=10, lands_after=20)
        return Answer()

    cloud.rule = rule
    caplog.set_level(logging.WARNING, logger="releasebot.cloudflare")
    async with cloud.client() as cf:
        result = await cloud.time.run(cf.deploy("tax-api", SPLIT, "R-1 10% v1.4.2"))

    assert sent["n"] == 1  # watched it land instead of posting again
    assert cloud.made("tax-api") == [WANTED]
    assert result.id == cloud.deployments["tax-api"][0].id
    assert 20 <= cloud.time.t <= 24  # found within a check interval of it landing
    looks = [s for s in cloud.seen if s.method == "GET"]
    assert len(looks) >= 5  # the active deployment was read over the window
    logged = [r for r in caplog.records if "the deployment exists" in r.getMessage()]
    assert logged and "timed out" in logged[0].getMessage()  # the cause is in the log
    assert getattr(logged[0], "deployment_id", None) == result.id


async def test_someone_elses_deployment_of_the_same_split_is_not_taken_for_ours() -> None:
    cloud = world()
    sent = {"n": 0}

    def rule(c, method, kind, script, split):  # type: ignore[no-untyped-def]
        if method == "POST":
            sent["n"] += 1
            if sent["n"] == 1:
                # meanwhile a person deploys the same split by hand, with their own message
                c.deployments[script].insert(0, _theirs(c.time.t))
                return Answer(timeout=True, seconds=10)
        return Answer()

    cloud.rule = rule
    async with cloud.client(landing_window=6) as cf:
        result = await cloud.time.run(cf.deploy("tax-api", SPLIT, "R-1 10% v1.4.2"))
    assert sent["n"] == 2  # not seen as ours: after the window, sent again
    assert result.message == "R-1 10% v1.4.2"


async def test_a_timed_out_post_that_never_lands_is_sent_again_after_the_window() -> None:
    cloud = world()
    sent = {"n": 0}

    def rule(c, method, kind, script, split):  # type: ignore[no-untyped-def]
        if method == "POST":
            sent["n"] += 1
            if sent["n"] == 1:
                return Answer(timeout=True, seconds=10)
        return Answer()

    cloud.rule = rule
    async with cloud.client(landing_window=30) as cf:
        await cloud.time.run(cf.deploy("tax-api", SPLIT, "R-1 10%"))
    second = [s.at for s in cloud.seen if s.method == "POST"][1]
    assert 40 <= second <= 45  # the 10 s timeout, then a 30 s window of looks
    assert cloud.made("tax-api") == [WANTED]


async def test_a_5xx_after_the_deployment_was_made_is_recognised_at_once() -> None:
    cloud = world()
    sent = {"n": 0}

    def rule(c, method, kind, script, split):  # type: ignore[no-untyped-def]
        if method == "POST":
            sent["n"] += 1
            if sent["n"] == 1:
                return Answer(502, apply_first=True)
        return Answer()

    cloud.rule = rule
    async with cloud.client() as cf:
        await cloud.time.run(cf.deploy("tax-api", SPLIT, "R-1 10%"))
    assert sent["n"] == 1 and cloud.made("tax-api") == [WANTED]
    assert cloud.time.t < 1


def _theirs(at: float):  # type: ignore[no-untyped-def]
    from tests.fakecloud import FakeDeployment

    return FakeDeployment("by-hand", WANTED, "hotfix by ana", at, by_bot=False)
