"""Whole releases while Cloudflare misbehaves, on virtual time: the engine, the real client and
a small Cloudflare (``tests.fakecloud``), with in-memory storage. Minutes of retries, bakes and
read storms take well under a second."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import datetime
from typing import Any

import pytest

from bot.config import parse_config
from bot.engine.errors import EdgeUnavailable
from bot.engine.model import ProbeAnswer, Release, VersionMetrics, VersionReport
from bot.engine.ports import EdgeCall
from bot.engine.service import DeployRequest, ReleaseService
from bot.engine.states import State
from bot.slack.throttle import PersonLimit
from tests.fakecloud import Answer, FakeCloudflare, VirtualTime
from tests.fakes import (
    FakeDirectory,
    FakeRails,
    FakeReleaseRepository,
    FakeTimers,
    FakeVotes,
    RecordingNotifier,
)

SERVICES = ("tax-api", "tax-web", "tax-docs", "tax-auth", "tax-mail")
BAKE = 30


def config(health_url: str | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {"health_url": health_url} if health_url else {}
    return {
        "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
        "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
        "policies": {
            "production": {
                "rollout": {"steps": [10, 50, 100], "bake": f"{BAKE}s", "min_requests": 10},
            },
        },
        "services": {
            name: {"environments": {"production": {"script": name, "policy": "production", **env}}}
            for name in SERVICES
        },
    }


class Healthy:
    """Analytics: every version serves plenty of requests without errors."""

    async def version_metrics(
        self, script: str, since: datetime, until: datetime, call: EdgeCall | None = None
    ) -> dict[str, VersionMetrics]:
        return {
            f"{script}-{tag}": VersionMetrics(f"{script}-{tag}", 1000, 0)
            for tag in ("v1.4.1", "v1.4.2")
        }


class Throttled(Healthy):
    """Analytics failing ``times`` times first: rate-limited (429) or down (5xx)."""

    def __init__(self, times: int, rate_limited: bool) -> None:
        self.left = times
        self.rate_limited = rate_limited

    async def version_metrics(
        self, script: str, since: datetime, until: datetime, call: EdgeCall | None = None
    ) -> dict[str, VersionMetrics]:
        if self.left:
            self.left -= 1
            status = 429 if self.rate_limited else 503
            raise EdgeUnavailable(
                f"Cloudflare answered {status} while reading analytics",
                rate_limited=self.rate_limited,
            )
        return await super().version_metrics(script, since, until, call)


class Prober:
    """Health probes during the gates answering ``status`` the first ``times`` times, then
    200 (the smoke test's probes, pinned to the new version, pass)."""

    def __init__(self, times: int, status: int) -> None:
        self.left = times
        self.status = status
        self.probed = 0

    async def health_probe(
        self, url: str, version_override: tuple[str, str] | None = None
    ) -> tuple[bool, int | None, str]:
        if version_override is not None:
            return True, 200, f"{url} answered 200"
        self.probed += 1
        if self.left:
            self.left -= 1
            return False, self.status, f"{url} answered {self.status}"
        return True, 200, f"{url} answered 200"

    async def version_probe(
        self, url: str, script: str, version_id: str, report: VersionReport
    ) -> ProbeAnswer:
        """The smoke test's probe, pinned to the new version: it answers, and says so."""
        ok, status, detail = await self.health_probe(url, (script, version_id))
        return ProbeAnswer(ok, status, detail, version_id if report.configured else None)


class World:
    def __init__(
        self,
        analytics: Healthy | None = None,
        prober: Prober | None = None,
        repo: FakeReleaseRepository | None = None,
        **client: Any,
    ) -> None:
        self.time = VirtualTime()
        self.cloud = FakeCloudflare(self.time)
        for name in SERVICES:
            self.cloud.add_script(name)
        self.edge = self.cloud.client(**client)
        self.repo = repo or FakeReleaseRepository()
        self.timers = FakeTimers()
        self.notifier = RecordingNotifier()
        self.service = ReleaseService(
            parse_config(config("https://tax.example.com/healthz" if prober else None)),
            self.repo,
            self.edge,
            self.notifier,
            self.time,
            votes=FakeVotes(self.repo),
            timers=self.timers,
            rails=FakeRails(self.repo),
            directory=FakeDirectory({}),
            analytics=analytics or Healthy(),
            prober=prober,
        )

    async def release(self, service: str) -> int:
        release = await self.service.request_deploy(
            DeployRequest(service, "v1.4.2", "U0CAROL", environment="production")
        )
        assert release.id is not None and release.state is State.APPROVED
        return release.id

    async def drive(self, ids: list[int]) -> list[Release]:
        """Kick every release at once, then run the scheduler's ticks until all have ended."""
        await asyncio.gather(*(self.service.kick(i) for i in ids))
        while True:
            ended = [await self.service.get(i) for i in ids]
            if all(r.state.is_terminal for r in ended):
                return ended
            await self.service.run_due()
            pending = [t.due_at for t in self.timers.rows.values() if t.fired_at is None]
            wait = (min(pending) - self.time.now()).total_seconds() if pending else 1.0
            await self.time.sleep(max(wait, 0.05))


def splits(name: str) -> list[tuple[tuple[str, float], ...]]:
    new, old = f"{name}-v1.4.2", f"{name}-v1.4.1"
    return [((new, 10.0), (old, 90.0)), ((new, 50.0), (old, 50.0)), ((new, 100.0),)]


async def test_a_blip_at_every_step_still_ends_in_one_deployment_per_step() -> None:
    """Each step's POST: 500 three times, 429 with Retry-After 5, then 503 for 20 s."""
    world = World()
    seen: dict[tuple[tuple[str, float], ...], dict[str, Any]] = {}

    def rule(c, method, kind, script, split):  # type: ignore[no-untyped-def]
        if method != "POST":
            return Answer()
        state = seen.setdefault(split, {"n": 0, "first_503": None})
        state["n"] += 1
        if state["n"] <= 3:
            return Answer(500)
        if state["n"] == 4:
            return Answer(429, retry_after=5)
        if state["first_503"] is None:
            state["first_503"] = c.time.t
        return Answer(503) if c.time.t - state["first_503"] < 20 else Answer()

    world.cloud.rule = rule

    async def scenario() -> list[Release]:
        return await world.drive([await world.release("tax-api")])

    (final,) = await world.time.run(scenario())
    await world.edge.aclose()

    assert final.state is State.SUCCEEDED, final.outcome
    assert world.cloud.made("tax-api") == splits("tax-api")  # one accepted deployment per step
    assert all(state["n"] >= 6 for state in seen.values())  # every step met the whole blip
    # the card said Cloudflare was busy, with the time as a Slack date token
    notes = world.notifier.card_notes
    # each step: the line while it waits, then (empty) the line taken away once it is over
    assert [bool(n) for n in notes] == [True, False] * 3
    assert all("Cloudflare busy, retrying until <!date^" in n for n in notes[::2])
    assert "at {time}|2026-11-26 14:02 UTC>" in notes[0]  # the first step's call began at 14:00:00


@pytest.mark.parametrize("seed", [14, 3, 22])
async def test_five_releases_through_60_s_of_30_percent_failures_all_complete_once(
    seed: int,
) -> None:
    """30 % of every Cloudflare call fails for a minute: 5xx, 429s, answers lost after the
    deployment was made, timeouts of requests that still land up to 20 s later."""
    world = World()
    rng = random.Random(seed)
    troubles = [
        Answer(500),
        Answer(503),
        Answer(429, retry_after=3),
        Answer(502, apply_first=True),
        Answer(timeout=True, seconds=10),
        Answer(timeout=True, seconds=10, lands_after=20),
    ]
    failed = {"n": 0}

    def rule(c, method, kind, script, split):  # type: ignore[no-untyped-def]
        if c.time.t < 60 and rng.random() < 0.3:
            trouble = rng.choice(troubles)
            if method != "POST" and (trouble.apply_first or trouble.lands_after):
                trouble = Answer(500)
            failed["n"] += 1
            return trouble
        return Answer()

    world.cloud.rule = rule

    async def scenario() -> list[Release]:
        ids = [await world.release(name) for name in SERVICES]
        return await world.drive(ids)

    finals = await world.time.run(scenario())
    await world.edge.aclose()

    assert [r.state for r in finals] == [State.SUCCEEDED] * 5, [r.outcome for r in finals]
    for name in SERVICES:
        assert world.cloud.made(name) == splits(name), name  # no duplicate deployment
    assert failed["n"] >= 10  # the trouble was real (about 60 calls fall in the minute)


@pytest.mark.parametrize(
    ("rate_limited", "ends"), [(True, State.SUCCEEDED), (False, State.ROLLED_BACK)]
)
async def test_a_rate_limited_gate_is_asked_again_not_judged(
    rate_limited: bool, ends: State
) -> None:
    """Analytics answering 429 five times is no verdict on the version (the gate asks again);
    analytics down as often is: after three tries the gate fails and the release rolls back."""
    world = World(analytics=Throttled(5, rate_limited))

    async def scenario() -> list[Release]:
        return await world.drive([await world.release("tax-api")])

    (final,) = await world.time.run(scenario())
    await world.edge.aclose()
    assert final.state is ends, final.outcome
    first = final.steps[0].gate or {}
    if rate_limited:
        assert first.get("analytics_rate_limited") == 5 and "analytics_errors" not in first
    else:
        assert "no analytics to judge by after 3 tries" in (final.outcome or "")


@pytest.mark.parametrize(("status", "ends"), [(429, State.SUCCEEDED), (500, State.ROLLED_BACK)])
async def test_throttled_health_probes_do_not_fail_the_gate(status: int, ends: State) -> None:
    """Ten probes in a row answered 429 say nothing about the version; ten 500s do."""
    prober = Prober(10, status)
    world = World(prober=prober)

    async def scenario() -> list[Release]:
        return await world.drive([await world.release("tax-api")])

    (final,) = await world.time.run(scenario())
    await world.edge.aclose()
    assert final.state is ends, final.outcome
    # throttled: all ten sat out, then the probes went on; failing: three in a row fail it
    assert prober.probed > 10 if status == 429 else prober.probed == 3


@pytest.mark.parametrize(("per_person", "ran"), [(10, 30), (1000, 300)])
async def test_a_read_storm_during_a_rollout_is_bounded_and_steps_stay_on_time(
    per_person: int, ran: int
) -> None:
    """300 read commands in 10 s from 3 people while a rollout steps: each person's limit and
    the shared, kept reads bound what reaches Cloudflare (even with no personal limit to
    speak of); the steps are not delayed."""
    world = World(call_budget=None)
    world.edge = world.cloud.client(call_budget=world.cloud.budget(rate=2, burst=20, reserve=5))
    world.service = _service_over(world)
    limit = PersonLimit(per_person, 30.0, world.time.monotonic)
    people = ("U0ALICE", "U0BOB", "U0CAROL")
    answered = {"ran": 0, "polite": 0}
    storm: dict[str, float] = {}

    async def one(person: str, n: int) -> None:
        if limit.admit(person) is not None:
            answered["polite"] += 1
            return
        answered["ran"] += 1
        if n % 3 == 0:
            await world.service.versions_of("tax-api", "production")
        elif n % 3 == 1:
            await world.service.target_status("tax-api", "production")
        else:
            await world.service.overview()

    async def reads() -> None:
        # the first step is deployed: the storm hits while R-1 bakes and moves to 50%
        while not world.cloud.made("tax-api"):
            await world.time.sleep(0.1)
        storm["from"] = world.time.t
        tasks = []
        for n in range(300):
            tasks.append(asyncio.ensure_future(one(people[n % 3], n)))
            await world.time.sleep(10 / 300)
        await asyncio.gather(*tasks)
        storm["until"] = world.time.t

    async def scenario() -> list[Release]:
        release = await world.release("tax-api")
        finals, _ = await asyncio.gather(world.drive([release]), reads())
        return finals

    (final,) = await world.time.run(scenario())
    await world.edge.aclose()

    assert final.state is State.SUCCEEDED, final.outcome
    assert answered == {"ran": ran, "polite": 300 - ran}
    during = world.cloud.calls(storm["from"], storm["until"] + 1)
    reads_during = [s for s in during if s.method == "GET"]
    # bound: per script and kind at most one read per kept interval (2 s deployments, 5 s
    # versions) over the 10 s storm, for the 5 scripts `overview` asks about, plus the
    # release's own fresh reads: measured well below the call budget's 20 + 2 × 11 = 42
    assert len(during) <= 42
    assert len(reads_during) <= 5 * (6 + 3) + 10
    # the steps were on time: each step's deployment within 1 s of its bake's end
    made = [d for d in reversed(world.cloud.deployments["tax-api"]) if d.by_bot]
    assert len(made) == 3
    for before, after in itertools.pairwise(made):
        assert after.at - before.at - BAKE <= 1, (before.at, after.at)  # ≤ 1 s late


def _service_over(world: World) -> ReleaseService:
    return ReleaseService(
        parse_config(config()),
        world.repo,
        world.edge,
        world.notifier,
        world.time,
        votes=FakeVotes(world.repo),
        timers=world.timers,
        rails=FakeRails(world.repo),
        directory=FakeDirectory({}),
        analytics=Healthy(),
    )
