"""People steering releases in flight: promote, pause, resume, roll back on demand."""

from __future__ import annotations

import asyncio

from bot.engine.driver import Driver
from bot.engine.errors import ConcurrentUpdate, NotFound
from bot.engine.facts import Gatekeeper
from bot.engine.model import Release, Step
from bot.engine.notices import RollingBack, Steered
from bot.engine.policy import Action, may_steer_release
from bot.engine.ports import EdgeDeployer, ReleaseRepository
from bot.engine.recorder import Recorder
from bot.engine.reverter import Reverter, rollback_intent
from bot.engine.states import State

CONTROL_TRIES = 5  # a control races the driver's own saves (a bake's probes): try again
# How long a person's rollback request waits for another process driving the release to do it.
ROLLBACK_WAIT_S = 10.0
VERBS = {"promote": Action.PROMOTE, "pause": Action.PAUSE, "resume": Action.RESUME}


class Controls:
    def __init__(
        self,
        repo: ReleaseRepository,
        edge: EdgeDeployer,
        gatekeeper: Gatekeeper,
        recorder: Recorder,
        reverter: Reverter,
        driver: Driver,
    ) -> None:
        self.repo = repo
        self.edge = edge
        self.gate = gatekeeper
        self.recorder = recorder
        self.reverter = reverter
        self.driver = driver

    async def _get(self, release_id: int) -> Release:
        release = await self.repo.get(release_id)
        if release is None:
            raise NotFound(f"there is no release R-{release_id}")
        return release

    async def control(self, release_id: int, user_id: str, verb: str) -> Release | None:
        """``promote`` (end the bake now), ``pause``, ``resume`` or ``roll back``.

        The driver saves the release while it bakes, so a control that loses the race to a
        save of the driver's is applied again to the release as it is then."""
        for attempt in range(1, CONTROL_TRIES + 1):
            try:
                return await self._control_once(release_id, user_id, verb)
            except ConcurrentUpdate:
                if attempt == CONTROL_TRIES:
                    raise
        return None  # not reached

    async def _control_once(self, release_id: int, user_id: str, verb: str) -> Release | None:
        release = await self._get(release_id)
        if verb == "roll back":
            return await self.roll_back_by(release, user_id, None)
        action = VERBS.get(verb)
        if action is None:
            raise NotFound(f"unknown control '{verb}'")
        await self.gate.check_release(action, user_id, release)
        step = release.steps[release.current_step]
        if action is Action.PROMOTE:
            step.gate = {**(step.gate or {}), "promote": True}
            entry = self.recorder.entry(
                release, user_id, "release.promoted", step_percent=step.percent
            )
            saved = await self.recorder.save(release, [entry], steps=(step,))
            await self.recorder.say(Steered(saved, user_id, "promote", step.percent))
            return await self.driver.kick(release_id)
        release.paused = action is Action.PAUSE
        steps: tuple[Step, ...] = ()
        drift = (step.gate or {}).get("drift")
        if action is Action.RESUME and isinstance(drift, str):
            # the person has seen the change made outside the bot and lets the release go on
            step.gate = {**(step.gate or {}), "accepted_deployment": drift, "drift": None}
            steps = (step,)
        entry = self.recorder.entry(release, user_id, f"release.{verb}d")
        saved = await self.recorder.save(release, [entry], steps=steps)
        await self.recorder.say(Steered(saved, user_id, verb))
        if not saved.paused:
            return await self.driver.kick(release_id)
        return saved

    async def roll_back_by(
        self, release: Release, user_id: str, reason: str | None
    ) -> Release | None:
        """A person rolls back a release that is rolling out."""
        grant = self.gate.grant(release.service, release.environment)
        members = await self.gate.members(grant.policy.deployers, grant.policy.approvers)
        refusal = may_steer_release(grant, release, user_id, members)
        if refusal is not None:
            raise await self.recorder.refuse(user_id, "roll back", refusal.reason, release)
        if release.state not in (State.DEPLOYING, State.VERIFYING):
            state = release.state.value.replace("_", " ")
            raise await self.recorder.refuse(
                user_id, "roll back", f"{release.key} is not rolling out (it is {state})", release
            )
        await self.recorder.say(RollingBack(release, user_id))
        why = "rolled back on request" + (f": {reason}" if reason else "")
        return await self.roll_back(release, user_id, why)

    async def roll_back(self, release: Release, actor: str, why: str) -> Release | None:
        """Store the decision to roll back, then have the release's driver put the stable
        version back at 100%. Returns the release as it is then."""
        assert release.id is not None
        for _ in range(10):
            fresh = await self._get(release.id)
            if fresh.state not in (State.DEPLOYING, State.VERIFYING):
                return fresh
            if rollback_intent(fresh) is not None:
                break  # already decided (a gate, or someone else a moment ago)
            step = fresh.steps[fresh.current_step]
            step.gate = {**(step.gate or {}), "rollback": self.reverter.intent(actor, why)}
            fresh.paused = False  # a rollback is what the person wants now, paused or not
            try:
                await self.repo.save(fresh, [], steps=(step,))
                break
            except ConcurrentUpdate:
                continue  # the driver moved on meanwhile: decide on the release as it is now
        kicked = await self.driver.kick(release.id)
        if kicked is not None and kicked.state.is_terminal:
            return kicked
        # another process drives it and is in the middle of a step; it rolls back next
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ROLLBACK_WAIT_S
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            current = await self._get(release.id)
            if current.state.is_terminal:
                return current
        return await self._get(release.id)
