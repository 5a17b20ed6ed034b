"""Manual locks and freezes."""

from __future__ import annotations

from datetime import datetime

from bot.engine.core import EngineCore
from bot.engine.errors import NotFound, Refused
from bot.engine.model import AuditEntry, FreezeRecord, LockRecord
from bot.engine.policies import deploy_refusal


class Rails(EngineCore):
    async def _may_steer(self, user_id: str, service: str | None, environment: str) -> None:
        """Locks and freezes are for those who may deploy there."""
        targets = [
            (svc, env)
            for svc, spec in self.config.services.items()
            for env in spec.environments
            if env == environment and (service is None or svc == service)
        ]
        if not targets:
            where = f"{service}/{environment}" if service else environment
            raise NotFound(f"no service has the environment '{where}'")
        svc, env = targets[0]
        policy_name = self.config.services[svc].environments[env].policy
        policy = self.config.policies[policy_name]
        members = await self._members(policy.deployers, policy.approvers)
        refusal = deploy_refusal(policy_name, policy, user_id, members)
        if refusal:
            raise await self._refuse(
                user_id, "lock or freeze", refusal, service=service, environment=environment
            )

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

    async def lock(self, service: str, environment: str, user_id: str, reason: str | None) -> bool:
        """Lock service/environment; True for a new lock, False when the reason was updated."""
        self._check_target(service, environment)
        await self._may_steer(user_id, service, environment)
        record = LockRecord(service, environment, reason, user_id, self.clock.now())
        entry = self._entry(user_id, "lock.set", service, environment, reason=reason)
        created = await self.rails.lock(record, [entry])
        await self._post_audit([entry])
        verb = "locked" if created else "updated the lock on"
        why = f": {reason}" if reason else ""
        await self.notifier.announce(f":lock: <@{user_id}> {verb} {service}/{environment}{why}")
        return created

    async def unlock(self, service: str, environment: str, user_id: str) -> LockRecord:
        self._check_target(service, environment)
        await self._may_steer(user_id, service, environment)
        entry = self._entry(user_id, "lock.released", service, environment)
        lifted = await self.rails.unlock(service, environment, [entry])
        if lifted is None:
            raise NotFound(f"{service}/{environment} is not locked")
        await self._post_audit([entry])
        await self.notifier.announce(
            f":unlock: <@{user_id}> released the lock on {service}/{environment}"
            f" (set by <@{lifted.locked_by}>)"
        )
        await self.start_next(service, environment)  # type: ignore[attr-defined]
        return lifted

    async def freeze(
        self, environment: str, until: datetime, user_id: str, reason: str | None
    ) -> FreezeRecord:
        await self._may_steer(user_id, None, environment)
        if until <= self.clock.now():
            raise Refused("that time is already past; give a time in the future")
        record = FreezeRecord(environment, until, reason, user_id, self.clock.now())
        entry = self._entry(
            user_id, "freeze.set", None, environment, until=until.isoformat(), reason=reason
        )
        await self.rails.freeze(record, [entry])
        await self._post_audit([entry])
        why = f": {reason}" if reason else ""
        stamp = until.strftime("%a %Y-%m-%d %H:%M %Z")
        await self.notifier.announce(
            f":snowflake: <@{user_id}> froze {environment} until {stamp}{why}"
        )
        return record

    async def unfreeze(self, environment: str, user_id: str) -> int:
        await self._may_steer(user_id, None, environment)
        entry = self._entry(user_id, "freeze.ended", None, environment)
        ended = await self.rails.unfreeze(environment, [entry])
        if not ended:
            raise NotFound(
                f"{environment} has no freeze set with `/release freeze`"
                " (freezes from the config file end by themselves)"
            )
        await self._post_audit([entry])
        await self.notifier.announce(f":sunny: <@{user_id}> ended the freeze on {environment}")
        return ended

    def _check_target(self, service: str, environment: str) -> None:
        if service not in self.config.services:
            raise NotFound(f"unknown service '{service}'")
        if environment not in self.config.services[service].environments:
            raise NotFound(f"{service} has no environment '{environment}'")
