"""The call budget (priorities, the reserve for releases), shared reads, and per-person limits,
on virtual time."""

from __future__ import annotations

import asyncio

import pytest

from bot.cloudflare.budget import BudgetExhausted, CallBudget, Priority
from bot.cloudflare.reads import ReadCache
from bot.engine.ports import READ, EdgeCall, Urgency
from bot.slack.throttle import PersonLimit, polite_answer
from tests.fakecloud import FakeCloudflare, VirtualTime


def budget(time: VirtualTime, rate: float = 1.0, burst: int = 4, reserve: int = 2) -> CallBudget:
    return CallBudget(rate, burst, reserve, monotonic=time.monotonic, sleep=time.sleep)


async def test_reads_leave_the_reserve_to_releases() -> None:
    time = VirtualTime()
    calls = budget(time)
    assert calls.try_take(Priority.READ) and calls.try_take(Priority.READ)
    assert not calls.try_take(Priority.READ)  # the last two tokens are kept for releases
    assert calls.try_take(Priority.STEP) and calls.try_take(Priority.ROLLBACK)
    assert not calls.try_take(Priority.STEP)


async def test_a_waiting_rollback_goes_before_waiting_steps_and_reads() -> None:
    time = VirtualTime()
    calls = budget(time, rate=1.0, burst=1, reserve=0)
    assert calls.try_take(Priority.STEP)
    order: list[str] = []

    async def want(name: str, priority: Priority) -> None:
        await calls.take(priority, deadline=100)
        order.append(name)

    async def everyone() -> None:
        # the read asks first, the rollback last
        await asyncio.gather(
            want("read", Priority.READ),
            want("step", Priority.STEP),
            want("rollback", Priority.ROLLBACK),
        )

    await time.run(everyone())
    assert order == ["rollback", "step", "read"]
    assert 2.9 <= time.t <= 3.1  # one token a second


async def test_no_token_before_the_deadline_is_an_error() -> None:
    time = VirtualTime()
    calls = budget(time, rate=0.1, burst=1, reserve=0)
    assert calls.try_take(Priority.READ)
    with pytest.raises(BudgetExhausted):
        await time.run(calls.take(Priority.READ, deadline=5))
    assert time.t == pytest.approx(5)


def test_the_reserve_must_leave_room() -> None:
    with pytest.raises(ValueError):
        CallBudget(1.0, 5, 5)


async def test_reads_in_flight_are_shared_and_kept_for_their_ttl() -> None:
    time = VirtualTime()
    cache: ReadCache[list[str]] = ReadCache(5.0, time.monotonic)
    fetched = 0

    async def fetch() -> list[str]:
        nonlocal fetched
        fetched += 1
        await time.sleep(1)
        return [f"answer {fetched}"]

    async def burst() -> list[list[str]]:
        return list(await asyncio.gather(*(cache.get("tax-api", fetch) for _ in range(50))))

    answers = await time.run(burst())
    assert fetched == 1 and all(a == ["answer 1"] for a in answers)
    time.advance(3)
    assert await time.run(cache.get("tax-api", fetch)) == ["answer 1"]  # kept
    time.advance(2)
    assert await time.run(cache.get("tax-api", fetch)) == ["answer 2"]  # expired
    cache.forget("tax-api")
    assert await time.run(cache.get("tax-api", fetch)) == ["answer 3"]


async def test_a_failed_read_is_not_kept() -> None:
    time = VirtualTime()
    cache: ReadCache[int] = ReadCache(5.0, time.monotonic)
    results = [RuntimeError("down"), 7]

    async def fetch() -> int:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    with pytest.raises(RuntimeError):
        await cache.get("k", fetch)
    assert await cache.get("k", fetch) == 7


async def test_client_reads_coalesce_but_a_releases_reads_are_always_fresh() -> None:
    cloud = FakeCloudflare(VirtualTime())
    cloud.add_script("tax-api")

    async def questions() -> None:
        await asyncio.gather(
            *(cf.list_versions("tax-api", READ) for _ in range(20)),
            *(cf.active_deployment("tax-api", READ) for _ in range(20)),
        )

    async with cloud.client() as cf:
        await cloud.time.run(questions())
        assert len(cloud.seen) == 2  # one per script and kind
        await cloud.time.run(questions())
        assert len(cloud.seen) == 2  # still kept
        await cf.active_deployment("tax-api", EdgeCall(Urgency.STEP))
        await cf.active_deployment("tax-api")
        assert len(cloud.seen) == 4  # a release reads afresh every time


async def test_a_deployment_by_the_bot_drops_the_kept_deployments() -> None:
    cloud = FakeCloudflare(VirtualTime())
    cloud.add_script("tax-api")
    from bot.engine.model import VersionShare

    async with cloud.client() as cf:
        before = await cf.active_deployment("tax-api", READ)
        await cf.deploy("tax-api", [VersionShare("tax-api-v1.4.2", 100)], "R-1 100%")
        after = await cf.active_deployment("tax-api", READ)
    assert before is not None and after is not None and before.id != after.id


def test_a_person_gets_their_share_then_a_polite_answer() -> None:
    time = VirtualTime()
    limit = PersonLimit(3, 10.0, time.monotonic)
    assert [limit.admit("U0CAROL") for _ in range(3)] == [None, None, None]
    wait = limit.admit("U0CAROL")
    assert wait == pytest.approx(10.0)
    assert limit.admit("U0ALICE") is None  # others are not held up
    time.advance(4)
    assert limit.admit("U0CAROL") == pytest.approx(6.0)
    time.advance(6)
    assert limit.admit("U0CAROL") is None
    text = polite_answer("/release versions", 5.2)
    assert "try `/release versions` again in 6 seconds" in text


async def test_the_budget_reports_each_calls_wait() -> None:
    time = VirtualTime()
    heard: list[tuple[str, float]] = []

    class Heard:
        def observe_budget_wait(self, priority: str, seconds: float) -> None:
            heard.append((priority, seconds))

    calls = CallBudget(1.0, 1, 0, monotonic=time.monotonic, sleep=time.sleep, metrics=Heard())

    async def two() -> None:
        await calls.take(Priority.STEP, deadline=10)
        await calls.take(Priority.READ, deadline=10)

    await time.run(two())
    assert heard == [("step", 0.0), ("read", pytest.approx(1.0))]
