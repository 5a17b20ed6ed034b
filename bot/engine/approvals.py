"""Deciding on a release: approve, reject, cancel, expire — and approved → start.

A vote is recorded once per person; the release is approved when every requirement of its
policy is met (for a break-glass deploy the environment's and the emergency policy's), and
then started here: the driver runs it now, or it waits for a lock or the queue, and the
answer says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.engine.driver import Driver
from bot.engine.errors import ConcurrentUpdate, IllegalTransition, NotFound
from bot.engine.facts import Gatekeeper
from bot.engine.model import REJECTED, AuditEntry, LockRecord, Release, Vote
from bot.engine.notices import Cancelled, Expired, Rejected, VoteCounted, Waiting
from bot.engine.policy import Action
from bot.engine.ports import RailsRepository, ReleaseRepository, TimerRepository, VoteRepository
from bot.engine.quorum import approvals_met, counted
from bot.engine.recorder import BOT_ACTOR, Recorder
from bot.engine.states import Event, State


@dataclass(frozen=True, slots=True)
class Started:
    """Where an approved release stands after being started: running (or done), or waiting
    behind a lock or another release (``place`` in line)."""

    release: Release
    lock: LockRecord | None = None
    holder: Release | None = None
    place: int = 0

    @property
    def waiting(self) -> bool:
        return self.release.state is State.APPROVED


class Approvals:
    def __init__(
        self,
        repo: ReleaseRepository,
        votes: VoteRepository,
        timers: TimerRepository,
        rails: RailsRepository,
        gatekeeper: Gatekeeper,
        recorder: Recorder,
        driver: Driver,
    ) -> None:
        self.repo = repo
        self.votes = votes
        self.timers = timers
        self.rails = rails
        self.gate = gatekeeper
        self.recorder = recorder
        self.driver = driver
        self.clock = recorder.clock

    async def get(self, release_id: int) -> Release:
        release = await self.repo.get(release_id)
        if release is None:
            raise NotFound(f"there is no release R-{release_id}")
        return release

    async def start(self, release_id: int) -> Started:
        """Start an approved release: it runs now, or waits; says which and why."""
        release = await self.driver.kick(release_id)
        if release is None:
            raise NotFound(f"there is no release R-{release_id}")
        if release.state is not State.APPROVED:
            return Started(release)
        lock = await self.rails.get_lock(release.service, release.environment)
        place, holder = await self.driver.queue_position(release)
        await self.recorder.say(
            Waiting(
                release,
                lock.locked_by if lock else None,
                lock.reason if lock else None,
                holder.key if holder else None,
                place,
            )
        )
        return Started(release, lock, holder, place)

    async def check_vote(
        self, release: Release, user_id: str, version_id: str | None, what: str
    ) -> list[Vote]:
        """Raise ``Refused`` (audited) when ``user_id`` may not decide on ``release`` now."""
        votes = await self.votes.votes(release.id or 0)
        action = Action.APPROVE if what == "approve" else Action.REJECT
        await self.gate.check_release(action, user_id, release, votes, version_id)
        return votes

    async def decide(
        self,
        release_id: int,
        user_id: str,
        approve: bool,
        version_id: str | None = None,
        reason: str | None = None,
    ) -> Started:
        """Record ``user_id``'s vote; enough approvals approve and start the release, one
        rejection ends it. A refusal raises ``Refused`` and is audited."""
        release = await self.get(release_id)
        what = "approve" if approve else "reject"
        await self.check_vote(release, user_id, version_id, what)
        now = self.clock.now()
        vote = Vote(release_id, release.version_id, user_id, approve, now, reason)
        detail: dict[str, object] = {"version_id": release.version_id}
        if reason:
            detail["reason"] = reason
        entry = AuditEntry(
            actor=user_id,
            action="vote.approved" if approve else "vote.rejected",
            at=now,
            release_id=release.id,
            release_key=release.key,
            service=release.service,
            environment=release.environment,
            detail=detail,
        )
        if not await self.votes.add_vote(vote, [entry]):
            # Slack delivered the same click twice, or two clicks raced: one vote counts.
            raise await self.recorder.refuse(
                user_id, what, f"your decision on {release.key} is already recorded", release
            )
        await self.recorder.posted([entry])
        if not approve:
            return Started(await self._reject(release, user_id, reason))
        # Read the votes again after ours is stored: two approvers clicking at once each see
        # the other's vote at the latest here (the later commit sees both).
        given = counted(release, await self.votes.votes(release_id))
        requirements = self.gate.requirements(release)
        members = await self.gate.members(*(r.approvers for r in requirements))
        await self.recorder.say(
            VoteCounted(release, user_id, len(given), release.approvals_required)
        )
        if not approvals_met(requirements, given, members, release.approvals_required):
            await self.recorder.tell(release, [])
            return Started(release)
        try:
            approved = await self.recorder.transition(
                release, Event.APPROVE, BOT_ACTOR, approvers=[v.user_id for v in given]
            )
        except (ConcurrentUpdate, IllegalTransition):
            # Another vote or an expiry changed it first; whatever it became stands.
            return Started(await self.get(release_id))
        assert approved.id is not None
        await self.timers.cancel_for(approved.id, "expire")
        return await self.start(approved.id)

    async def _reject(self, release: Release, user_id: str, reason: str | None) -> Release:
        why = REJECTED + (f": {reason}" if reason else "")
        try:
            rejected = await self.recorder.transition(
                release,
                Event.REJECT,
                user_id,
                outcome=why,
                finished=True,
                changes={"ended_by": user_id},
                reason=reason,
            )
        except (ConcurrentUpdate, IllegalTransition):
            return await self.get(release.id or 0)
        await self.recorder.say(Rejected(rejected, user_id, reason))
        await self.timers.cancel_for(rejected.id or 0)
        return rejected

    async def cancel(self, release_id: int, user_id: str) -> Release:
        release = await self.get(release_id)
        await self.gate.check_release(Action.CANCEL, user_id, release)
        try:
            cancelled = await self.recorder.transition(
                release,
                Event.CANCEL,
                user_id,
                outcome="cancelled",
                finished=True,
                changes={"ended_by": user_id},
            )
        except (ConcurrentUpdate, IllegalTransition) as exc:
            raise await self.recorder.refuse(user_id, "cancel", str(exc), release) from exc
        await self.timers.cancel_for(cancelled.id or 0)
        await self.recorder.say(Cancelled(cancelled, user_id))
        await self.driver.start_next(cancelled.service, cancelled.environment)
        return cancelled

    async def expire(self, release_id: int) -> Release | None:
        """The approval window closed: an undecided release expires."""
        release = await self.repo.get(release_id)
        if release is None or release.state is not State.AWAITING_APPROVAL:
            return release
        if release.expires_at is not None and self.clock.now() < release.expires_at:
            return release
        try:
            expired = await self.recorder.transition(
                release,
                Event.EXPIRE,
                BOT_ACTOR,
                finished=True,
                outcome="not approved in time; ask again with a new release",
            )
        except (ConcurrentUpdate, IllegalTransition):
            return await self.repo.get(release_id)
        await self.recorder.say(Expired(expired))
        return expired
