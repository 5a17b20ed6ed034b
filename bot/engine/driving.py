"""Driving a release: durable timers, the queue, each step's intent → deploy → verify.

All driving goes through timers (kind ``advance``) leased to one process at a time, so a
restart, or another replica, picks up exactly where a dead process left off.

One release is driven by one task at a time, whichever process holds it: an in-process lock
per release, and across processes the leases themselves (a timer is not run while another
process holds a live lease on an ``advance`` timer of the same release). A lease is renewed
while its work runs, so a slow Cloudflare call never lets a second driver in; a dead process
stops renewing and its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import weakref
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from bot.engine.core import BOT_ACTOR, EngineCore, log
from bot.engine.errors import ConcurrentUpdate, EdgeError, IllegalTransition, Refused
from bot.engine.model import (
    AuditEntry,
    Deployment,
    Release,
    Step,
    StepStatus,
    Timer,
    VersionShare,
)
from bot.engine.rollout import split_for
from bot.engine.states import Event, State
from bot.logcontext import about_release

DEPLOY_MESSAGE_MAX = 50  # Cloudflare's workers/message annotation limit
ADVANCE = "advance"
EXPIRE = "expire"
# A timer whose release another process drives right now is tried again this much later
# (random, so two waiting timers do not keep colliding).
BUSY_RETRY_S = (0.2, 1.0)

# The advance timer the current task runs (so waits do not schedule a duplicate of it).
_running_timer: ContextVar[int | None] = ContextVar("releasebot_running_timer", default=None)


class Driving(EngineCore):
    # -- timers -----------------------------------------------------------------------------

    async def kick(self, release_id: int, due: datetime | None = None) -> Release | None:
        """Schedule the release to be driven (now, unless ``due``); run it here when due now."""
        when = due or self.clock.now()
        timer_id = await self.timers.schedule(ADVANCE, when, release_id)
        if due is None:
            timer = await self.timers.claim(timer_id, self.clock.now(), self.owner, self.lease)
            if timer is not None:
                await self.run_timer(timer)
        return await self.repo.get(release_id)

    async def run_due(self, limit: int = 20) -> list[Timer]:
        """Claim and run the timers that are due (the scheduler's tick)."""
        claimed = await self.timers.claim_due(self.clock.now(), self.owner, self.lease, limit)
        for timer in claimed:
            await self.run_timer(timer)
        return claimed

    @about_release
    async def run_timer(self, timer: Timer) -> None:
        """Run one claimed timer; it is completed only when its work is done, so a crash
        leaves it to be claimed again once the lease runs out."""
        if timer.release_id is not None:
            if timer.kind == ADVANCE:
                if not await self._drive_alone(timer.release_id, timer):
                    return  # claimed again once the other driver is done
            elif timer.kind == EXPIRE:
                await self.expire(timer.release_id)  # type: ignore[attr-defined]
            elif timer.kind == "summary":
                await self.post_summary(timer.release_id)  # type: ignore[attr-defined]
            else:
                log.warning("unknown timer kind %s", timer.kind)
        elif timer.kind == "digest":
            await self.run_digest(timer, self.next_fire)  # type: ignore[attr-defined]
        await self.timers.complete(timer.id, self.clock.now())

    async def _still_mine(self, timer: Timer | None) -> bool:
        """Whether this process still holds ``timer``'s lease. A lease known to run for more
        than half its length yet (claimed or renewed here just now) cannot have been taken
        over; otherwise it is renewed in the database, which says whether it is still ours."""
        if timer is None:
            return True
        now = self.clock.now()
        until = timer.claimed_until
        if timer.claimed_by == self.owner and until is not None and until - now > self.lease / 2:
            return True
        return await self._renew(timer, now)

    async def _renew(self, timer: Timer, now: datetime) -> bool:
        until = now + self.lease
        if not await self.timers.extend(timer.id, self.owner, until):
            return False
        timer.claimed_until = until
        return True

    def _drive_lock(self, release_id: int) -> asyncio.Lock:
        locks: weakref.WeakValueDictionary[int, asyncio.Lock] = self.__dict__.setdefault(
            "_drive_locks", weakref.WeakValueDictionary()
        )
        lock = locks.get(release_id)
        if lock is None:
            lock = locks[release_id] = asyncio.Lock()
        return lock

    async def _drive_alone(self, release_id: int, timer: Timer) -> bool:
        """Drive the release under ``timer`` unless another process drives it now; then the
        timer's lease is shortened so it is claimed again soon, and False is returned."""
        async with self._drive_lock(release_id):
            if await self._driven_elsewhere(release_id, timer):
                log.info("release %s is driven by another process; trying later", release_id)
                retry = timedelta(seconds=random.uniform(*BUSY_RETRY_S))
                await self.timers.extend(timer.id, self.owner, self.clock.now() + retry)
                return False
            token = _running_timer.set(timer.id)
            heartbeat = asyncio.create_task(self._heartbeat(timer))
            try:
                await self.drive(release_id, timer)
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

    async def _heartbeat(self, timer: Timer) -> None:
        """Renew the lease while the timer's work runs (Cloudflare may be slow to answer)."""
        every = max(self.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(every)
            try:
                if not await self._renew(timer, self.clock.now()):
                    return
            except Exception:
                log.warning("renewing the lease of timer %s failed", timer.id, exc_info=True)

    async def schedule_advance(self, release_id: int, when: datetime) -> None:
        """Have the release driven at ``when``, unless a timer already does it by then."""
        running = _running_timer.get()
        for other in await self.timers.pending(release_id, ADVANCE):
            if other.id != running and other.due_at <= when:
                return
        await self.timers.schedule(ADVANCE, when, release_id)

    # -- driving ----------------------------------------------------------------------------

    @about_release
    async def drive(self, release_id: int, timer: Timer | None = None) -> None:
        """Advance the release as far as it can go now: to an end, or to a wait (the queue,
        a bake). Stops when another process has taken the lease over. Each step forward
        starts from the stored release, read again: a pause or a cancel saved meanwhile is
        seen before anything is deployed."""
        while True:
            release = await self.repo.get(release_id)
            if release is None or not release.state.is_active:
                return
            if release.paused and rollback_intent(release) is None:
                return
            if not await self._still_mine(timer):
                log.info("lost the lease on %s; another process drives it", release.key)
                return
            try:
                if not await self._advance(release):
                    return
            except ConcurrentUpdate:
                continue  # someone changed it (a pause, a promote): look again

    async def _advance(self, release: Release) -> bool:
        """One step forward; False when the release has to wait."""
        if release.state is State.APPROVED:
            return await self._start(release)
        step = release.steps[release.current_step]
        if release.state is State.DEPLOYING:
            return await self._deploy_step(release, step)
        if release.state is State.VERIFYING:
            return await self._verify_step(release, step)
        return False

    async def _start(self, release: Release) -> bool:
        """Take the service/environment (unless locked or busy) and write the first intent."""
        lock = await self.rails.get_lock(release.service, release.environment)
        if lock is not None:
            log.info("%s waits: %s is locked", release.key, release.target)
            return False
        step = Step(index=0, percent=release.plan[0], intended_at=self.clock.now())
        try:
            await self._transition(
                release,
                Event.START,
                BOT_ACTOR,
                steps=(step,),
                changes={"current_step": 0},
                step_percent=step.percent,
            )
        except Refused:
            log.info("%s waits in the queue for %s", release.key, release.target)
            return False
        return True

    def split(self, release: Release, percent: int) -> tuple[VersionShare, ...]:
        return split_for(release.version_id, release.stable_version_id, percent)

    def _message(self, release: Release, what: str) -> str:
        label = release.version_tag or release.version_id[:8]
        return f"{release.key} {what} {label}"[:DEPLOY_MESSAGE_MAX]

    async def _deploy_step(self, release: Release, step: Step) -> bool:
        split = self.split(release, step.percent)
        try:
            # The intent was stored before this call; after a crash the split may already be
            # live, so look before deploying again.
            active = await self.edge.active_deployment(release.script)
            if active is not None and active.same_split(split):
                deployment = active
            else:
                deployment = await self.edge.deploy(
                    release.script, split, self._message(release, f"{step.percent}%")
                )
        except EdgeError as exc:
            await self.fail_safe(release, self.describe_failure(release, step, exc))
            return False
        step.status = StepStatus.DEPLOYED
        step.deployment_id = deployment.id
        step.deployed_at = self.clock.now()
        await self._transition(
            release,
            Event.STEP_DEPLOYED,
            BOT_ACTOR,
            steps=(step,),
            deployment_id=deployment.id,
            step_percent=step.percent,
            split={s.version_id: s.percentage for s in split},
        )
        return True

    def describe_failure(self, release: Release, step: Step, exc: Exception) -> str:
        return f"step {step.percent}% could not be deployed: {exc}"

    async def _verify_step(self, release: Release, step: Step) -> bool:
        split = self.split(release, step.percent)
        try:
            active = await self.edge.active_deployment(release.script)
        except EdgeError as exc:
            await self.fail_safe(release, f"could not read the deployment back: {exc}")
            return False
        if active is None or not active.same_split(split):
            seen = describe_split(active)
            await self.fail_safe(release, f"Cloudflare serves {seen}, not the split just deployed")
            return False
        verdict = await self.judge(release, step, active)
        if verdict is None:
            return False  # waiting (a bake); a timer is set
        return await self.after_gate(release, step, active, verdict)

    async def judge(self, release: Release, step: Step, active: Deployment) -> object | None:
        """The gate of a deployed step; None while it still bakes. Overridden by rollouts."""
        return "pass"

    async def after_gate(
        self,
        release: Release,
        step: Step,
        active: Deployment,
        verdict: object,
        records: Sequence[AuditEntry] = (),
    ) -> bool:
        """Move on after a passed gate; ``records`` (the verdict's) are stored with the move."""
        step.status = StepStatus.PASSED
        step.gate = {**(step.gate or {}), "verified_deployment": active.id}
        if step.index == len(release.plan) - 1:
            done = await self._transition(
                release,
                Event.VERIFIED,
                BOT_ACTOR,
                steps=(step,),
                finished=True,
                preceding=records,
                deployment_id=active.id,
            )
            await self.schedule_summary(done)  # type: ignore[attr-defined]
            await self.ended(release)
            return False
        nxt = Step(
            index=step.index + 1,
            percent=release.plan[step.index + 1],
            intended_at=self.clock.now(),
        )
        await self._transition(
            release,
            Event.NEXT_STEP,
            BOT_ACTOR,
            steps=(step, nxt),
            changes={"current_step": nxt.index},
            preceding=records,
            step_percent=nxt.percent,
        )
        return True

    @about_release
    async def fail_safe(self, release: Release, why: str) -> None:
        """Put the stable version back at 100% (if it is not), then mark the release failed."""
        restored = None
        stable = release.stable_version_id
        if stable:
            moved = broke = False
            try:
                active = await self.edge.active_deployment(release.script)
                if active is None or active.stable_version_id != stable:
                    moved = True
                    await self.edge.deploy(
                        release.script,
                        (VersionShare(stable, 100),),
                        self._message(release, "restore"),
                    )
                    active = await self.edge.active_deployment(release.script)
                restored = active is not None and active.stable_version_id == stable
            except EdgeError as exc:
                why += f"; putting {stable[:8]} back at 100% failed too: {exc}"
                restored = False
                broke = True
            if restored:
                where = "is back at 100%" if moved else "still serves 100%"
                why += f"; the stable version `{stable[:8]}` {where} (read back from Cloudflare)"
            elif not broke:
                why += f"; Cloudflare does not show `{stable[:8]}` at 100% after the restore"
        if restored is False:
            why += " — check the live split on Cloudflare now"
        for _ in range(5):  # a control saved meanwhile: the failure still has to be stored
            release = await self._reload(release)
            if release.state.is_terminal:
                return
            try:
                failed = await self._transition(
                    release,
                    Event.FAIL,
                    BOT_ACTOR,
                    outcome=why,
                    finished=True,
                    stable_restored=restored,
                )
                break
            except ConcurrentUpdate:
                continue
            except IllegalTransition:
                return
        else:
            return
        await self._say(failed, f":red_circle: {failed.key} failed: {why}")
        label = failed.version_tag or failed.version_id[:8]
        await self._announce(
            f":red_circle: {failed.key} {failed.service} {label} → {failed.environment} "
            f"failed: {why}. <@{failed.requested_by}>"
        )
        await self.ended(failed)

    async def _announce(self, text: str) -> None:
        try:
            await self.notifier.announce(text)
        except Exception:  # the state is stored; telling people must not undo or stop it
            log.exception("posting to the release channel failed")

    async def ended(self, release: Release) -> None:
        """A release left its service/environment: start the next one waiting there."""
        if release.id is not None:
            await self.timers.cancel_for(release.id, EXPIRE)
        await self.start_next(release.service, release.environment)

    async def start_next(self, service: str, environment: str) -> None:
        waiting = await self.repo.queued(service, environment)
        if waiting and waiting[0].id is not None:
            await self.timers.schedule(ADVANCE, self.clock.now(), waiting[0].id)

    async def queue_position(self, release: Release) -> tuple[int, Release | None]:
        """(1-based place among the approved releases waiting, the release holding the slot)."""
        waiting = await self.repo.queued(release.service, release.environment)
        ids = [r.id for r in waiting]
        place = ids.index(release.id) + 1 if release.id in ids else 0
        return place, await self.repo.active_for(release.service, release.environment)


def rollback_intent(release: Release) -> dict[str, Any] | None:
    """The stored decision to roll ``release`` back (on its current step), if there is one.

    It is written before the rollback deployment, so whoever drives the release next (this
    process, a restarted one, another replica) finishes the rollback instead of going on."""
    if not release.steps or not 0 <= release.current_step < len(release.steps):
        return None
    gate = release.steps[release.current_step].gate or {}
    intent = gate.get("rollback")
    return intent if isinstance(intent, dict) else None


def describe_split(deployment: Deployment | None) -> str:
    if deployment is None:
        return "no deployment"
    return " + ".join(f"{s.version_id[:8]} at {s.percentage:g}%" for s in deployment.versions)
