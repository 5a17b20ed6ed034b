"""The one way a release changes: the change, its audit record and what people are told.

Every state change goes through :meth:`Recorder.transition`, which stores the release with
exactly one audit entry for the event (after any ``preceding`` entries, such as the gate verdict
that led to it) in one transaction — storage writes the audit channel's and the webhooks'
outbox rows in that same transaction — and then tells people: the card, the requester's
direct message, the thread. Telling never undoes or stops a stored change.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.engine import audit
from bot.engine.errors import Refused
from bot.engine.machine import next_state
from bot.engine.model import AuditEntry, Release, Step
from bot.engine.notices import EdgeBusy, Notice, RequesterUpdate
from bot.engine.ports import Clock, EdgeCall, Notifier, ReleaseRepository, Urgency
from bot.engine.states import Event, State
from bot.engine.words import Words
from bot.logcontext import about_release

log = logging.getLogger("releasebot.engine")

BOT_ACTOR = "releasebot"
REQUESTER_HEARS = frozenset(
    {
        "release.awaiting_approval",
        "release.approved",
        "release.succeeded",
        "release.failed",
        "release.rolled_back",
    }
)

Detail = str | int | float | bool | None | list[object] | dict[str, object]


class Recorder:
    def __init__(
        self, repo: ReleaseRepository, notifier: Notifier, clock: Clock, release_channel: str
    ) -> None:
        self.repo = repo
        self.notifier = notifier
        self.clock = clock
        self.release_channel = release_channel

    @about_release
    async def transition(
        self,
        release: Release,
        event: Event,
        actor: str,
        *,
        steps: Sequence[Step] = (),
        outcome: str | None = None,
        finished: bool = False,
        changes: dict[str, object] | None = None,
        preceding: Sequence[AuditEntry] = (),
        **detail: object,
    ) -> Release:
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
        await self.tell(saved, entries)
        return saved

    async def store_new(
        self,
        draft: Release,
        *,
        ttl: timedelta,
        auto_reason: str | None = None,
        **detail: object,
    ) -> Release:
        """Store a new release with its ``requested`` record and approve it at once (no
        approvals required) or submit it for approval, to expire after ``ttl``."""
        now = self.clock.now()
        draft.created_at = draft.updated_at = now
        entries = [audit.created_entry(draft, now)]
        entries[0].detail.update({k: v for k, v in detail.items() if v is not None})
        if draft.approvals_required == 0:
            draft.state = next_state(State.REQUESTED, Event.AUTO_APPROVE)
            entries.append(
                audit.transition_entry(
                    draft, BOT_ACTOR, Event.AUTO_APPROVE, State.REQUESTED, now, reason=auto_reason
                )
            )
        else:
            draft.state = next_state(State.REQUESTED, Event.SUBMIT)
            draft.expires_at = now + ttl
            entries.append(
                audit.transition_entry(draft, BOT_ACTOR, Event.SUBMIT, State.REQUESTED, now)
            )
        release = await self.repo.create(draft, entries)
        log.info("release requested", extra={"release_id": release.key})
        await self.tell(release, entries)
        return release

    async def save(
        self, release: Release, entries: Sequence[AuditEntry] = (), steps: Sequence[Step] = ()
    ) -> Release:
        """A change that is not a state change (a pause, a gate's progress), with its records."""
        saved = await self.repo.save(release, entries, steps=steps)
        if entries:
            await self.tell(saved, entries)
        return saved

    def entry(self, release: Release, actor: str, action: str, **detail: object) -> AuditEntry:
        return AuditEntry(
            actor=actor,
            action=action,
            at=self.clock.now(),
            release_id=release.id,
            release_key=release.key,
            service=release.service,
            environment=release.environment,
            detail={k: v for k, v in detail.items() if v is not None},
        )

    async def record(self, entries: Sequence[AuditEntry]) -> None:
        """Facts that change no release (a lock, a freeze, a digest), stored, then posted."""
        await self.repo.append_audit(entries)
        await self.posted(entries)

    async def refuse(
        self,
        actor: str,
        what: str,
        reason: Words | str,
        release: Release | None = None,
        *,
        service: str | None = None,
        environment: str | None = None,
        **detail: object,
    ) -> Refused:
        """Audit a refusal and return the error to raise."""
        refused = Refused(reason)
        entry = AuditEntry(
            actor=actor,
            action="refused",
            at=self.clock.now(),
            release_id=release.id if release else None,
            release_key=release.key if release else None,
            service=release.service if release else service,
            environment=release.environment if release else environment,
            detail={"what": what, "reason": str(refused), **detail},
        )
        await self.record([entry])
        return refused

    async def tell(self, release: Release, entries: Sequence[AuditEntry]) -> None:
        try:
            await self.notifier.release_changed(release)
        except Exception:  # the state is stored; telling people must not undo or stop it
            log.exception("updating the card of %s failed", release.key)
        await self.posted(entries)
        for entry in entries:
            if entry.action in REQUESTER_HEARS:
                await self.say(RequesterUpdate(release, entry.action, self.release_channel))

    async def posted(self, entries: Sequence[AuditEntry]) -> None:
        """The records are stored (with their outbox rows): have them sent now."""
        if not entries:
            return
        try:
            await self.notifier.audit_recorded(entries)
        except Exception:
            log.exception("waking the audit outbox failed")

    def edge_call(self, release: Release, urgency: Urgency = Urgency.STEP) -> EdgeCall:
        """A call to the edge on behalf of ``release``: when it has to wait for Cloudflare,
        the card says until when it keeps trying."""

        async def busy(until: datetime | None) -> None:
            if until is not None:
                log.info("%s waits for Cloudflare until %s", release.key, until.isoformat())
            await self.say(EdgeBusy(release, until))

        return EdgeCall(urgency, busy)

    async def say(self, notice: Notice) -> None:
        try:
            await self.notifier.notify(notice)
        except Exception:
            log.exception("telling people about %s failed", type(notice).__name__)
