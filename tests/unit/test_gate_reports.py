"""Gate reports are said once per verdict stored: a verdict whose transition loses to a
concurrent change (a promote or a pause saved meanwhile) is judged again, and is not reported
a second time."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from bot.engine.errors import ConcurrentUpdate
from bot.engine.model import AuditEntry, Release, Step
from bot.engine.notices import GateReport
from bot.engine.states import State
from tests.fakes import FakeReleaseRepository
from tests.unit.test_release_cloudflare_trouble import World


class LosesFirstVerdicts(FakeReleaseRepository):
    """Before storing each step's first verdict, another process saves the release (its
    revision moves on), so that first transition raises ConcurrentUpdate."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: list[int] = []

    async def save(
        self, release: Release, audit: Sequence[AuditEntry], steps: Sequence[Step] = ()
    ) -> Release:
        passed = [e for e in audit if e.action == "gate.passed"]
        if passed and release.id is not None:
            percent = int(str(passed[0].detail["step_percent"]))
            if percent not in self.lost:
                self.lost.append(percent)
                current = self.releases[release.id]
                bumped = copy.deepcopy(current)
                bumped.revision += 1
                self.releases[release.id] = bumped
                raise ConcurrentUpdate(release.key)
        return await super().save(release, audit, steps)


async def test_a_verdict_lost_to_a_concurrent_save_is_reported_once() -> None:
    repo = LosesFirstVerdicts()
    world = World(repo=repo)

    async def scenario() -> list[Release]:
        return await world.drive([await world.release("tax-api")])

    (final,) = await world.time.run(scenario())
    await world.edge.aclose()

    assert final.state is State.SUCCEEDED, final.outcome
    assert repo.lost == [10, 50, 100]  # every step's first verdict was lost and judged again
    reports = [n.step_percent for n in world.notifier.notices if isinstance(n, GateReport)]
    assert reports == [10, 50, 100]
    passed = [e for e in repo.audit if e.action == "gate.passed"]
    assert [e.detail["step_percent"] for e in passed] == [10, 50, 100]
