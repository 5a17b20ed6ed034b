"""Manual locks and freezes. Each is decided by the policy and audited with its change."""

from __future__ import annotations

from datetime import datetime

from bot.engine.driver import Driver
from bot.engine.errors import NotFound, Refused
from bot.engine.facts import Gatekeeper
from bot.engine.model import AuditEntry, FreezeRecord, LockRecord
from bot.engine.notices import FreezeChanged, LockChanged
from bot.engine.policy import Action
from bot.engine.ports import RailsRepository
from bot.engine.recorder import Recorder


class Rails:
    def __init__(
        self, rails: RailsRepository, gatekeeper: Gatekeeper, recorder: Recorder, driver: Driver
    ) -> None:
        self.rails = rails
        self.gate = gatekeeper
        self.recorder = recorder
        self.driver = driver
        self.clock = recorder.clock

    def _entry(
        self, actor: str, action: str, service: str | None, env: str, **detail: object
    ) -> AuditEntry:
        return AuditEntry(
            actor=actor,
            action=action,
            at=self.clock.now(),
            service=service,
            environment=env,
            detail={k: v for k, v in detail.items() if v is not None},
        )

    async def get_lock(self, service: str, environment: str) -> LockRecord | None:
        return await self.rails.get_lock(service, environment)

    async def lock(self, service: str, environment: str, user_id: str, reason: str | None) -> bool:
        """Lock service/environment; True for a new lock, False when the reason was updated."""
        self.gate.grant(service, environment)
        await self.gate.check_rails(Action.LOCK, user_id, service, environment)
        record = LockRecord(service, environment, reason, user_id, self.clock.now())
        entry = self._entry(user_id, "lock.set", service, environment, reason=reason)
        created = await self.rails.lock(record, [entry])
        await self.recorder.posted([entry])
        await self.recorder.say(
            LockChanged(service, environment, user_id, True, reason, updated=not created)
        )
        return created

    async def unlock(self, service: str, environment: str, user_id: str) -> LockRecord:
        self.gate.grant(service, environment)
        await self.gate.check_rails(Action.UNLOCK, user_id, service, environment)
        entry = self._entry(user_id, "lock.released", service, environment)
        lifted = await self.rails.unlock(service, environment, [entry])
        if lifted is None:
            raise NotFound(f"{service}/{environment} is not locked")
        await self.recorder.posted([entry])
        starting = await self.driver.start_next(service, environment)
        await self.recorder.say(
            LockChanged(
                service,
                environment,
                user_id,
                False,
                set_by=lifted.locked_by,
                starts=starting.key if starting else None,
            )
        )
        return lifted

    async def freeze(
        self, environment: str, until: datetime, user_id: str, reason: str | None
    ) -> FreezeRecord:
        await self.gate.check_rails(Action.FREEZE, user_id, None, environment)
        if until <= self.clock.now():
            raise Refused("that time is already past; give a time in the future")
        record = FreezeRecord(environment, until, reason, user_id, self.clock.now())
        entry = self._entry(
            user_id, "freeze.set", None, environment, until=until.isoformat(), reason=reason
        )
        await self.rails.freeze(record, [entry])
        await self.recorder.posted([entry])
        await self.recorder.say(FreezeChanged(environment, user_id, True, until, reason))
        return record

    async def unfreeze(self, environment: str, user_id: str, command: str = "/release") -> int:
        await self.gate.check_rails(Action.UNFREEZE, user_id, None, environment)
        entry = self._entry(user_id, "freeze.ended", None, environment)
        ended = await self.rails.unfreeze(environment, [entry])
        if not ended:
            raise NotFound(
                f"{environment} has no freeze set with `{command} freeze`"
                " (freezes from the config file end by themselves)"
            )
        await self.recorder.posted([entry])
        await self.recorder.say(FreezeChanged(environment, user_id, False))
        return ended
