"""Deciding on a release: approve, reject, cancel, expire."""

from __future__ import annotations

from bot.engine.core import BOT_ACTOR, EngineCore
from bot.engine.errors import ConcurrentUpdate, IllegalTransition
from bot.engine.model import AuditEntry, Release, Vote
from bot.engine.policies import approvals, cancel_refusal, vote_refusal
from bot.engine.states import Event, State


class Approvals(EngineCore):
    async def check_vote(
        self, release: Release, user_id: str, version_id: str | None, what: str
    ) -> tuple[list[Vote], Release]:
        """Raise ``Refused`` (audited) when ``user_id`` may not decide on ``release`` now."""
        policy = self.policy(release)
        votes = await self.votes.votes(release.id or 0)
        members = await self._members(policy.approvers)
        clicked = version_id or release.version_id
        refusal = vote_refusal(release, policy, votes, user_id, clicked, members, self.clock.now())
        if refusal:
            raise await self._refuse(user_id, what, refusal, release)
        return votes, release

    async def decide(
        self,
        release_id: int,
        user_id: str,
        approve: bool,
        version_id: str | None = None,
        reason: str | None = None,
    ) -> Release:
        """Record ``user_id``'s vote; enough approvals approve the release (the caller kicks it
        off), one rejection ends it. A refusal raises ``Refused`` and is audited."""
        release = await self.get(release_id)
        what = "approve" if approve else "reject"
        _, release = await self.check_vote(release, user_id, version_id, what)
        now = self.clock.now()
        vote = Vote(release_id, release.version_id, user_id, approve, now, reason)
        entry = AuditEntry(
            actor=user_id,
            action="vote.approved" if approve else "vote.rejected",
            at=now,
            release_id=release.id,
            release_key=release.key,
            service=release.service,
            environment=release.environment,
            detail={"version_id": release.version_id, "reason": reason}
            if reason
            else {"version_id": release.version_id},
        )
        if not await self.votes.add_vote(vote, [entry]):
            # Slack delivered the same click twice, or two clicks raced: one vote counts.
            raise await self._refuse(
                user_id, what, f"your decision on {release.key} is already recorded", release
            )
        await self._post_audit([entry])
        if not approve:
            return await self._reject(release, user_id, reason)
        # Read the votes again after ours is stored: two approvers clicking at once each see
        # the other's vote at the latest here (the later commit sees both).
        given = approvals(release, await self.votes.votes(release_id))
        await self._say(
            release,
            f":white_check_mark: <@{user_id}> approved {release.key} "
            f"({len(given)} of {release.approvals_required})",
        )
        if len(given) < release.approvals_required:
            await self._tell(release, [])
            return release
        try:
            approved = await self._transition(
                release, Event.APPROVE, BOT_ACTOR, approvers=[v.user_id for v in given]
            )
        except (ConcurrentUpdate, IllegalTransition):
            # Another vote or an expiry changed it first; whatever it became stands.
            return await self.get(release_id)
        assert approved.id is not None
        await self.timers.cancel_for(approved.id, "expire")
        return approved

    async def _reject(self, release: Release, user_id: str, reason: str | None) -> Release:
        why = f"rejected by <@{user_id}>" + (f": {reason}" if reason else "")
        try:
            rejected = await self._transition(
                release, Event.REJECT, user_id, outcome=why, finished=True, reason=reason
            )
        except (ConcurrentUpdate, IllegalTransition):
            return await self.get(release.id or 0)
        await self._say(rejected, f":no_entry_sign: {why}")
        await self.timers.cancel_for(rejected.id or 0)
        return rejected

    async def cancel(self, release_id: int, user_id: str) -> Release:
        release = await self.get(release_id)
        policy = self.policy(release)
        members = await self._members(policy.approvers)
        refusal = cancel_refusal(release, user_id, policy, members)
        if refusal:
            raise await self._refuse(user_id, "cancel", refusal, release)
        try:
            cancelled = await self._transition(
                release,
                Event.CANCEL,
                user_id,
                outcome=f"cancelled by <@{user_id}>",
                finished=True,
            )
        except (ConcurrentUpdate, IllegalTransition) as exc:
            raise await self._refuse(user_id, "cancel", str(exc), release) from exc
        await self.timers.cancel_for(cancelled.id or 0)
        await self._say(cancelled, f":no_entry_sign: cancelled by <@{user_id}>")
        return cancelled

    async def expire(self, release_id: int) -> Release | None:
        """The approval window closed: an undecided release expires."""
        release = await self.repo.get(release_id)
        if release is None or release.state is not State.AWAITING_APPROVAL:
            return release
        if release.expires_at is not None and self.clock.now() < release.expires_at:
            return release
        try:
            expired = await self._transition(
                release,
                Event.EXPIRE,
                BOT_ACTOR,
                finished=True,
                outcome="not approved in time; ask again with a new release",
            )
        except (ConcurrentUpdate, IllegalTransition):
            return await self.repo.get(release_id)
        await self._say(expired, f":alarm_clock: {expired.key} expired without enough approvals.")
        return expired
