"""The driver: runs a release's stages in order, under a durable, leased timer.

All driving goes through timers (kind ``advance``) leased to one process at a time, so a
restart, or another replica, picks up exactly where a dead process left off. One release is
driven by one task at a time, whichever process holds it: an in-process lock per release, and
across processes the leases themselves (a timer is not run while another process holds a live
lease on an ``advance`` timer of the same release). A lease is renewed while its work runs;
a dead process stops renewing and its lease runs out.

Before its first step a release runs its pre-flight stages (admission, backup, ...); their
findings are stored with the start, together with the stable version — read then, so a
release that waited in the queue splits against what is live when it starts. What changes the
deployment before the first traffic step (the smoke test's 0% deployment) runs after the
start, while the release holds its environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.engine.errors import ConcurrentUpdate, EdgeError, IllegalTransition, Refused
from bot.engine.model import ADVANCE, EXPIRE, SUMMARY, Release, Step, Timer
from bot.engine.notices import StartsNow, StoppedBeforeTraffic
from bot.engine.ports import EdgeDeployer, ReleaseRepository, TimerRepository
from bot.engine.recorder import BOT_ACTOR, Recorder
from bot.engine.requests import stable_of
from bot.engine.reverter import Reverter, rollback_intent
from bot.engine.stages.base import Hold, Passed, Stop
from bot.engine.stages.pipeline import Pipeline
from bot.engine.states import Event, State
from bot.logcontext import about_release

log = logging.getLogger("releasebot.engine")

DEFAULT_LEASE = timedelta(seconds=8)
# A timer whose release another process drives right now is tried again this much later
# (random, so two waiting timers do not keep colliding).
BUSY_RETRY_S = (0.2, 1.0)

# The advance timer the current task runs (so waits do not schedule a duplicate of it).
_running_timer: ContextVar[int | None] = ContextVar("releasebot_running_timer", default=None)


@dataclass(slots=True)
class Lease:
    """This process's hold on one timer, renewed while its work runs."""

    timer_id: int
    owner: str
    until: datetime | None


class Driver:
    def __init__(
        self,
        repo: ReleaseRepository,
        timers: TimerRepository,
        edge: EdgeDeployer,
        recorder: Recorder,
        reverter: Reverter,
        pipeline: Pipeline,
        *,
        owner: str,
        lease: timedelta = DEFAULT_LEASE,
        summary_delay: Callable[[Release], timedelta] | None = None,
    ) -> None:
        self.repo = repo
        self.timers = timers
        self.edge = edge
        self.recorder = recorder
        self.reverter = reverter
        self.pipeline = pipeline
        self.clock = recorder.clock
        self.owner = owner
        self.lease = lease
        self.summary_delay = summary_delay
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- timers -----------------------------------------------------------------------------

    async def kick(self, release_id: int, due: datetime | None = None) -> Release | None:
        """Schedule the release to be driven (now, unless ``due``); run it here when due now."""
        when = due or self.clock.now()
        timer_id = await self.timers.schedule(ADVANCE, when, release_id)
        if due is None:
            timer = await self.timers.claim(timer_id, self.clock.now(), self.owner, self.lease)
            try:
                if timer is not None and await self.drive_timer(timer):
                    await self.timers.complete(timer.id, self.clock.now())
            except Exception as exc:
                # Whoever asked is not told "something went wrong" about a release that goes
                # on: the timer is left to the scheduler, which drives it again once the lease
                # runs out; the card shows how it ends.
                log.error(
                    "driving release %s failed (%s: %s); the scheduler tries again",
                    release_id,
                    type(exc).__name__,
                    exc,
                    exc_info=True,
                )
        return await self.repo.get(release_id)

    async def at(self, release_id: int, when: datetime) -> None:
        """Have the release driven at ``when``, unless a timer already does it by then."""
        running = _running_timer.get()
        for other in await self.timers.pending(release_id, ADVANCE):
            if other.id != running and other.due_at <= when:
                return
        await self.timers.schedule(ADVANCE, when, release_id)

    @about_release
    async def drive_timer(self, timer: Timer) -> bool:
        """Drive the release under ``timer`` unless another process drives it now (then the
        lease is shortened so it is claimed again soon); True when the timer is done."""
        assert timer.release_id is not None
        release_id = timer.release_id
        lock = self._locks.get(release_id)
        if lock is None:
            lock = self._locks[release_id] = asyncio.Lock()
        async with lock:
            if await self._driven_elsewhere(release_id, timer):
                log.info("release %s is driven by another process; trying later", release_id)
                retry = timedelta(seconds=random.uniform(*BUSY_RETRY_S))
                await self.timers.extend(timer.id, self.owner, self.clock.now() + retry)
                return False
            held = Lease(timer.id, self.owner, timer.claimed_until)
            token = _running_timer.set(timer.id)
            heartbeat = asyncio.create_task(self._heartbeat(held))
            try:
                await self.drive(release_id, held)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
                _running_timer.reset(token)
        return True

    async def _driven_elsewhere(self, release_id: int, timer: Timer) -> bool:
        now = self.clock.now()
        return any(
            other.id != timer.id
            and other.claimed_by is not None
            and other.claimed_by != self.owner
            and other.claimed_until is not None
            and other.claimed_until > now
            for other in await self.timers.pending(release_id, ADVANCE)
        )

    async def _still_mine(self, held: Lease | None) -> bool:
        """Whether this process still holds the lease. One known to run for more than half
        its length yet cannot have been taken over; otherwise it is renewed in the database,
        which says whether it is still ours."""
        if held is None:
            return True
        now = self.clock.now()
        if held.until is not None and held.until - now > self.lease / 2:
            return True
        return await self._renew(held, now)

    async def _renew(self, held: Lease, now: datetime) -> bool:
        until = now + self.lease
        if not await self.timers.extend(held.timer_id, self.owner, until):
            return False
        held.until = until
        return True

    async def _heartbeat(self, held: Lease) -> None:
        every = max(self.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(every)
            try:
                if not await self._renew(held, self.clock.now()):
                    return
            except Exception:
                log.warning("renewing the lease of timer %s failed", held.timer_id, exc_info=True)

    # -- driving ----------------------------------------------------------------------------

    @about_release
    async def drive(self, release_id: int, held: Lease | None = None) -> None:
        """Advance the release as far as it can go now: to an end, or to a wait (the queue,
        a bake, a person). Each stage starts from the stored release, read again: a pause or
        a cancel saved meanwhile is seen before anything is deployed."""
        while True:
            release = await self.repo.get(release_id)
            if release is None or not release.state.is_active:
                return
            intent = rollback_intent(release)
            if release.paused and intent is None:
                return
            if not await self._still_mine(held):
                log.info("lost the lease on %s; another process drives it", release.key)
                return
            try:
                if intent is not None and release.state in (State.DEPLOYING, State.VERIFYING):
                    await self.reverter.roll_back_now(
                        release, release.steps[release.current_step], intent
                    )
                    return
                if not await self._advance(release):
                    return
            except ConcurrentUpdate:
                continue  # someone changed it (a pause, a promote): look again

    async def _advance(self, release: Release) -> bool:
        if release.state is State.APPROVED:
            return await self._start(release)
        stage = self.pipeline.stage(release)
        if stage is None:
            return False
        return await stage.run(release, release.steps[release.current_step])

    async def _start(self, release: Release) -> bool:
        """Run the pre-flight stages, then take the environment with the first step's intent,
        the stable version read now and what the stages found, in one transaction."""
        changes: dict[str, object] = {}
        detail: dict[str, object] = {}
        for stage in self.pipeline.of(release).preflight:
            result = await stage.run(release.copy(**changes))
            if isinstance(result, Hold):
                log.info("%s waits: %s", release.key, result.why)
                return False
            if isinstance(result, Stop):
                await self._fail_before_traffic(release, result.why)
                return False
            assert isinstance(result, Passed)
            changes.update(result.changes)
            detail.update(result.detail)
        try:
            active = await self.edge.active_deployment(release.script)
        except EdgeError as exc:
            await self._fail_before_traffic(release, f"could not read what is live: {exc}")
            return False
        stable = stable_of(active)
        step = Step(index=0, percent=release.plan[0], intended_at=self.clock.now())
        try:
            await self.recorder.transition(
                release,
                Event.START,
                BOT_ACTOR,
                steps=(step,),
                changes={
                    "current_step": 0,
                    "stable_version_id": stable,
                    "stable_version_tag": await self._tag_of(release, stable),
                    **changes,
                },
                step_percent=step.percent,
                stable_version_id=stable,
                **detail,
            )
        except Refused:
            log.info("%s waits in the queue for %s", release.key, release.target)
            return False
        return True

    async def _tag_of(self, release: Release, version_id: str | None) -> str | None:
        """The tag of the version to fall back to: as read at the request when it is still
        the same one, else from Cloudflare (None when that cannot be read)."""
        if version_id is None:
            return None
        if version_id == release.stable_version_id:
            return release.stable_version_tag
        try:
            return (await self.edge.get_version(release.script, version_id)).tag
        except EdgeError:
            return None

    async def _fail_before_traffic(self, release: Release, why: str) -> None:
        try:
            failed = await self.recorder.transition(
                release, Event.FAIL, BOT_ACTOR, outcome=why, finished=True, stable_restored=True
            )
        except (ConcurrentUpdate, IllegalTransition):
            return
        await self.recorder.say(StoppedBeforeTraffic(failed, why))
        await self.ended(failed)

    # -- after a release ---------------------------------------------------------------------

    async def succeeded(self, release: Release) -> None:
        if self.summary_delay is not None and release.kind.value == "deploy" and release.id:
            due = self.clock.now() + self.summary_delay(release)
            await self.timers.schedule(SUMMARY, due, release.id)
        await self.ended(release)

    async def ended(self, release: Release) -> None:
        """A release left its environment: start the next one waiting there."""
        if release.id is not None:
            await self.timers.cancel_for(release.id, EXPIRE)
        starting = await self.start_next(release.service, release.environment)
        if starting is not None and starting.id != release.id:
            await self.recorder.say(StartsNow(starting, release.key))

    async def start_next(self, service: str, environment: str) -> Release | None:
        waiting = await self.repo.queued(service, environment)
        if waiting and waiting[0].id is not None:
            await self.timers.schedule(ADVANCE, self.clock.now(), waiting[0].id)
            return waiting[0]
        return None

    async def queue_position(self, release: Release) -> tuple[int, Release | None]:
        """(1-based place among the approved releases waiting, the release holding the slot)."""
        waiting = await self.repo.queued(release.service, release.environment)
        ids = [r.id for r in waiting]
        place = ids.index(release.id) + 1 if release.id in ids else 0
        return place, await self.repo.active_for(release.service, release.environment)
