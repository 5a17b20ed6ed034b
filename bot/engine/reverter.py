"""Putting things back: the stable version at 100% after a failure or a rollback decision —
only over what this release itself left live, never over a change a person made.

A rollback is decided before it is done: the decision (who, why, when) is stored on the
current step first (:func:`rollback_intent`), and the release's driver carries it out with
:meth:`Reverter.roll_back_now`. So a rollback never races a step being deployed, and one
interrupted by a crash is finished by whoever drives next.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.config import Config
from bot.engine.errors import ConcurrentUpdate, EdgeError, IllegalTransition
from bot.engine.model import Deployment, Release, Step, VersionShare
from bot.engine.notices import Failed, RolledBack, StoppedBeforeTraffic
from bot.engine.ports import EdgeDeployer, ReleaseRepository, Urgency, VoteRepository
from bot.engine.recorder import BOT_ACTOR, Recorder
from bot.engine.rollout import split_for
from bot.engine.smoke import smoke_deployment
from bot.engine.states import Event, State

DEPLOY_MESSAGE_MAX = 50  # Cloudflare's workers/message annotation limit

Ended = Callable[[Release], Awaitable[None]]


def deploy_message(release: Release, what: str) -> str:
    label = release.version_tag or release.version_id[:8]
    return f"{release.key} {what} {label}"[:DEPLOY_MESSAGE_MAX]


def rollback_intent(release: Release) -> dict[str, Any] | None:
    """The stored decision to roll ``release`` back (on its current step), if there is one."""
    if not release.steps or not 0 <= release.current_step < len(release.steps):
        return None
    gate = release.steps[release.current_step].gate or {}
    intent = gate.get("rollback")
    return intent if isinstance(intent, dict) else None


def describe_split(deployment: Deployment | None) -> str:
    if deployment is None:
        return "no deployment"
    return " + ".join(f"{s.version_id[:8]} at {s.percentage:g}%" for s in deployment.versions)


def left_by(release: Release, active: Deployment | None) -> bool:
    """Whether ``active`` is something this release left live (or the stable version it
    started from): only then may the bot change it."""
    if active is None:
        return True
    ids = {s.deployment_id for s in release.steps if s.deployment_id}
    for step in release.steps:
        accepted = (step.gate or {}).get("accepted_deployment")
        if isinstance(accepted, str):
            ids.add(accepted)
        smoke = smoke_deployment(step)  # the new version at 0% beside the stable one
        if smoke is not None:
            ids.add(smoke)
    if active.id in ids:
        return True
    stable = release.stable_version_id
    if stable and active.same_split((VersionShare(stable, 100),)):
        return True
    return any(
        active.same_split(split_for(release.version_id, stable, step.percent))
        for step in release.steps
    )


class Reverter:
    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        votes: VoteRepository,
        edge: EdgeDeployer,
        recorder: Recorder,
        ended: Ended,
    ) -> None:
        self.config = config
        self.repo = repo
        self.votes = votes
        self.edge = edge
        self.recorder = recorder
        self.clock = recorder.clock
        self.ended = ended

    def intent(self, actor: str, why: str) -> dict[str, Any]:
        return {"actor": actor, "why": why, "at": self.clock.now().isoformat()}

    async def fail_safe(self, release: Release, why: str, *, before_traffic: bool = False) -> None:
        """Put the stable version back at 100% (if it is not, and if what is live is this
        release's own doing), then mark the release failed. ``before_traffic``: the new
        version never had a share of traffic (the smoke test), which is what people are told."""
        restored: bool | None = None
        stable = release.stable_version_id
        if stable:
            moved = broke = foreign = False
            call = self.recorder.edge_call(release, Urgency.ROLLBACK)
            try:
                active = await self.edge.active_deployment(release.script, call)
                if not left_by(release, active):
                    foreign = True
                elif active is None or active.stable_version_id != stable:
                    moved = True
                    await self.edge.deploy(
                        release.script,
                        (VersionShare(stable, 100),),
                        deploy_message(release, "restore"),
                        call=call,
                    )
                    active = await self.edge.active_deployment(release.script, call)
                restored = active is not None and active.stable_version_id == stable
            except EdgeError as exc:
                why += f"; putting {stable[:8]} back at 100% failed too: {exc}"
                restored = False
                broke = True
            if foreign:
                why += (
                    f"; the live deployment ({describe_split(active)}) was not made by this "
                    "release, so the bot left it as it is"
                )
                restored = None
            elif restored:
                where = "is back at 100%" if moved else "still serves 100%"
                why += f"; the stable version {stable[:8]} {where} (read back from Cloudflare)"
            elif not broke:
                why += f"; Cloudflare does not show {stable[:8]} at 100% after the restore"
        if restored is False:
            why += " — check the live split on Cloudflare now"
        failed = await self._store_end(
            release, Event.FAIL, BOT_ACTOR, why, stable_restored=restored
        )
        if failed is None:
            return
        notice = StoppedBeforeTraffic(failed, why) if before_traffic else Failed(failed, why)
        await self.recorder.say(notice)
        await self.ended(failed)

    async def _store_end(
        self, release: Release, event: Event, actor: str, why: str, **detail: object
    ) -> Release | None:
        for _ in range(5):  # a control saved meanwhile: the end still has to be stored
            assert release.id is not None
            fresh = await self.repo.get(release.id)
            if fresh is None or fresh.state.is_terminal:
                return None
            try:
                return await self.recorder.transition(
                    fresh, event, actor, outcome=why, finished=True, **detail
                )
            except ConcurrentUpdate:
                continue
            except IllegalTransition:
                return None
        return None

    async def roll_back_now(
        self, release: Release, step: Step, intent: dict[str, Any]
    ) -> Release | None:
        """Carry out a stored rollback decision: the stable version at 100% in one deployment
        (none when it already serves everything), read back, and the release ended. Only the
        release's driver calls this."""
        actor = str(intent.get("actor") or BOT_ACTOR)
        why = str(intent.get("why") or "rolled back")
        try:
            detected = datetime.fromisoformat(str(intent["at"]))
        except (KeyError, ValueError):
            detected = self.clock.now()
        stable = release.stable_version_id
        if not stable:
            await self.fail_safe(release, f"{why}; there is no earlier version to return to")
            return None
        call = self.recorder.edge_call(release, Urgency.ROLLBACK)
        try:
            active = await self.edge.active_deployment(release.script, call)
            if active is not None and active.stable_version_id == stable:
                deployment = active
            elif not left_by(release, active):
                await self.fail_safe(release, f"{why}; not rolled back")
                return None
            else:
                deployment = await self.edge.deploy(
                    release.script,
                    (VersionShare(stable, 100),),
                    deploy_message(release, "rollback"),
                    call=call,
                )
                active = await self.edge.active_deployment(release.script, call)
        except EdgeError as exc:
            await self.fail_safe(release, f"{why}; the rollback deployment failed: {exc}")
            return None
        took = (self.clock.now() - detected).total_seconds()
        verified = active is not None and active.stable_version_id == stable
        if not verified:
            why += (
                f" — Cloudflare does not show {stable[:8]} at 100% after the rollback; "
                "check the live split on Cloudflare now"
            )
        assert release.id is not None
        fresh = await self.repo.get(release.id)
        if fresh is None or fresh.state not in (State.DEPLOYING, State.VERIFYING):
            return None
        current = fresh.steps[fresh.current_step] if fresh.steps else step
        try:
            # a ConcurrentUpdate goes up to the driver, which looks again and finishes this
            rolled = await self.recorder.transition(
                fresh,
                Event.ROLL_BACK,
                actor,
                steps=(current,),
                outcome=why,
                finished=True,
                changes={"ended_by": actor if actor != BOT_ACTOR else None},
                to_version_id=stable,
                deployment_id=deployment.id,
                time_to_rollback_s=round(max(took, 0.0), 3),
                verified=verified,
            )
        except IllegalTransition:
            return None
        votes = await self.votes.votes(rolled.id or 0)
        people = tuple(
            dict.fromkeys([rolled.requested_by, *(v.user_id for v in votes if v.approve)])
        )
        entries = await self.repo.audit_for(rolled.id or 0)
        await self.recorder.say(
            RolledBack(
                rolled,
                why,
                automatic=actor == BOT_ACTOR,
                people=people,
                command=self.config.slack.command,
                timeline=tuple(entries),
            )
        )
        await self.ended(rolled)
        return rolled
