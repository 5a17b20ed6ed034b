"""The engine's shared machinery: its ports, the one way a state changes, refusals."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from bot.config import Config, Policy
from bot.engine import audit
from bot.engine.errors import NotFound, Refused
from bot.engine.machine import next_state
from bot.engine.model import AuditEntry, Release, Step
from bot.engine.ports import (
    Clock,
    Directory,
    EdgeDeployer,
    EventSink,
    Notifier,
    RailsRepository,
    ReleaseRepository,
    TimerRepository,
    VoteRepository,
)
from bot.engine.states import Event, State
from bot.logcontext import about_release

log = logging.getLogger("releasebot.engine")

BOT_ACTOR = "releasebot"
DEFAULT_LEASE = timedelta(seconds=8)


class EngineCore:
    """Holds the ports. Every state change goes through :meth:`_transition`, which writes
    exactly one audit entry in the same transaction as the change, then tells people."""

    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        edge: EdgeDeployer,
        notifier: Notifier,
        clock: Clock,
        *,
        votes: VoteRepository,
        timers: TimerRepository,
        rails: RailsRepository,
        directory: Directory,
        analytics: Any = None,
        prober: Any = None,
        owner: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
        events: EventSink | None = None,
    ) -> None:
        self.config = config
        self.repo = repo
        self.edge = edge
        self.notifier = notifier
        self.clock = clock
        self.votes = votes
        self.timers = timers
        self.rails = rails
        self.directory = directory
        self.analytics = analytics if analytics is not None else edge
        self.prober = prober
        # Who holds timer leases: one name per process, so replicas never share a lease.
        self.owner = owner or f"releasebot-{secrets.token_hex(4)}"
        self.lease = lease
        self.events = events
        # When a cron expression fires next (set by the scheduler wiring; None: no digests).
        self.next_fire: Any = None

    # -- lookups ----------------------------------------------------------------------------

    async def get(self, release_id: int) -> Release:
        release = await self.repo.get(release_id)
        if release is None:
            raise NotFound(f"there is no release R-{release_id}")
        return release

    async def _reload(self, release: Release) -> Release:
        assert release.id is not None
        return await self.get(release.id)

    def policy(self, release: Release) -> Policy:
        return self.config.policies[release.policy]

    async def _members(self, *id_lists: Sequence[str] | None) -> dict[str, set[str]]:
        groups = sorted({i for ids in id_lists if ids for i in ids if i.startswith("S")})
        return await self.directory.members(groups) if groups else {}

    # -- changes ----------------------------------------------------------------------------

    @about_release
    async def _transition(
        self,
        release: Release,
        event: Event,
        actor: str,
        *,
        steps: Sequence[Step] = (),
        outcome: str | None = None,
        finished: bool = False,
        changes: dict[str, Any] | None = None,
        preceding: Sequence[AuditEntry] = (),
        **detail: Any,
    ) -> Release:
        """Store the change with its audit record (after ``preceding`` records, such as the
        gate verdict that led to it, in the same transaction), then tell people."""
        before = release.state
        now = self.clock.now()
        changed = release.copy(state=next_state(before, event), updated_at=now, **(changes or {}))
        if outcome is not None:
            changed.outcome = outcome
        if finished:
            changed.finished_at = now
        entry = audit.transition_entry(
            changed, actor, event, before, now, outcome=outcome, **detail
        )
        entries = [*preceding, entry]
        saved = await self.repo.save(changed, entries, steps=steps)
        log.info(
            "release %s: %s -> %s",
            saved.key,
            before.value,
            saved.state.value,
            extra={"release_id": saved.key, "event": event.value},
        )
        await self._tell(saved, entries)
        return saved

    async def _store_new(
        self, draft: Release, *, auto_reason: str | None = None, **detail: Any
    ) -> Release:
        """Store a new release with its ``requested`` record and, by its policy, approve it at
        once (``auto_reason``) or submit it for approval with an expiry timer; tell people."""
        now = self.clock.now()
        draft.created_at = draft.updated_at = now
        entries = [audit.created_entry(draft, now)]
        entries[0].detail.update(detail)
        if draft.approvals_required == 0:
            draft.state = next_state(State.REQUESTED, Event.AUTO_APPROVE)
            entries.append(
                audit.transition_entry(
                    draft,
                    BOT_ACTOR,
                    Event.AUTO_APPROVE,
                    State.REQUESTED,
                    now,
                    reason=auto_reason,
                )
            )
        else:
            draft.state = next_state(State.REQUESTED, Event.SUBMIT)
            draft.expires_at = now + self.config.policies[draft.policy].approval_ttl
            entries.append(
                audit.transition_entry(draft, BOT_ACTOR, Event.SUBMIT, State.REQUESTED, now)
            )
        release = await self.repo.create(draft, entries)
        log.info("release requested", extra={"release_id": release.key})
        await self._tell(release, entries)
        if release.expires_at is not None and release.id is not None:
            await self.timers.schedule("expire", release.expires_at, release.id)
        return release

    async def _refuse(
        self, actor: str, what: str, reason: str, release: Release | None = None, **detail: Any
    ) -> Refused:
        """Audit a refusal and return the error to raise."""
        entry = AuditEntry(
            actor=actor,
            action="refused",
            at=self.clock.now(),
            release_id=release.id if release else None,
            release_key=release.key if release else None,
            service=release.service if release else detail.pop("service", None),
            environment=release.environment if release else detail.pop("environment", None),
            detail={"what": what, "reason": reason, **detail},
        )
        await self.repo.append_audit([entry])
        await self._post_audit([entry])
        return Refused(reason)

    async def _tell(self, release: Release, entries: Sequence[AuditEntry]) -> None:
        try:
            await self.notifier.release_changed(release)
        except Exception:  # the state is stored; telling people must not undo or stop it
            log.exception("updating the card of %s failed", release.key)
        stamped = [_with_release(e, release) for e in entries]
        await self._post_audit(stamped)
        for entry in stamped:
            text = direct_message(entry, release, self.config.slack.release_channel)
            if text:
                try:
                    await self.notifier.direct(release.requested_by, text)
                except Exception:
                    log.exception("telling the requester of %s failed", release.key)
        if self.events is not None and stamped:
            try:
                await self.events.recorded(release, stamped)
            except Exception:
                log.exception("queueing webhooks for %s failed", release.key)

    async def _post_audit(self, entries: Sequence[AuditEntry]) -> None:
        try:
            await self.notifier.audit_recorded(entries)
        except Exception:
            log.exception("posting audit records failed")

    async def _say(self, release: Release, text: str) -> None:
        try:
            await self.notifier.thread_reply(release, text)
        except Exception:
            log.exception("replying in the thread of %s failed", release.key)


def _with_release(entry: AuditEntry, release: Release) -> AuditEntry:
    if entry.release_id is not None:
        return entry
    return replace(entry, release_id=release.id, release_key=release.key)


def direct_message(entry: AuditEntry, release: Release, channel: str) -> str | None:
    """What the requester hears, in a DM, when their release needs approval, is approved,
    succeeds, fails or rolls back."""
    what = f"{release.key} ({release.service} {release.version_tag or release.version_id[:8]}"
    what += f" → {release.environment})"
    card = f" Its card is in <#{channel}>."
    match entry.action:
        case "release.awaiting_approval":
            return f":raised_hand: {what} needs {release.approvals_required} approvals.{card}"
        case "release.approved":
            return f":white_check_mark: {what} is approved and starts now.{card}"
        case "release.succeeded":
            return f":large_green_circle: {what} succeeded: it serves 100%."
        case "release.failed":
            return f":red_circle: {what} failed: {release.outcome}.{card}"
        case "release.rolled_back":
            return f":rewind: {what} was rolled back: {release.outcome}.{card}"
    return None
