"""restore-db: put D1 back to the bookmark taken before another release, then verify."""

from __future__ import annotations

from bot.config import Config
from bot.engine.errors import EdgeError
from bot.engine.model import Release, Step, StepStatus
from bot.engine.notices import D1Restored
from bot.engine.ports import EdgeDeployer
from bot.engine.recorder import BOT_ACTOR, Recorder
from bot.engine.reverter import Reverter
from bot.engine.stages.traffic import Finish
from bot.engine.states import Event


class Restore:
    name = "restore"

    def __init__(
        self, config: Config, edge: EdgeDeployer, recorder: Recorder, reverter: Reverter
    ) -> None:
        self.config = config
        self.edge = edge
        self.recorder = recorder
        self.reverter = reverter

    async def run(self, release: Release, step: Step) -> bool:
        env = self.config.services[release.service].environments[release.environment]
        database = env.d1_database_id
        if database is None or release.d1_bookmark is None:
            await self.reverter.fail_safe(release, "there is no D1 database or bookmark to restore")
            return False
        try:
            previous = await self.edge.d1_restore(database, release.d1_bookmark)
        except EdgeError as exc:
            await self.reverter.fail_safe(release, f"D1 refused the restore: {exc}")
            return False
        step.status = StepStatus.DEPLOYED
        step.deployed_at = self.recorder.clock.now()
        step.gate = {"previous_bookmark": previous}
        saved = await self.recorder.transition(
            release,
            Event.STEP_DEPLOYED,
            BOT_ACTOR,
            steps=(step,),
            d1_bookmark=release.d1_bookmark,
            previous_bookmark=previous,
        )
        await self.recorder.say(D1Restored(saved, release.d1_bookmark, previous))
        return True


class RestoreVerify:
    name = "verify"

    def __init__(self, recorder: Recorder, finish: Finish) -> None:
        self.recorder = recorder
        self.finish = finish

    async def run(self, release: Release, step: Step) -> bool:
        step.status = StepStatus.PASSED
        done = await self.recorder.transition(
            release, Event.VERIFIED, BOT_ACTOR, steps=(step,), finished=True
        )
        await self.finish.succeeded(done)
        return False
