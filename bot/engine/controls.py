"""People steering releases: promote, pause, resume, roll back on demand, restore D1."""

from __future__ import annotations

from bot.engine.core import BOT_ACTOR
from bot.engine.errors import ConcurrentUpdate, EdgeError, EdgeRejected, NotFound, Refused
from bot.engine.gates import Gates
from bot.engine.model import AuditEntry, Kind, Release, Step, StepStatus, Strategy
from bot.engine.policies import deploy_refusal, listed
from bot.engine.rollback import previous_stable, refusal_in_words
from bot.engine.states import Event, State
from bot.engine.versions import resolve_version

CONTROL_TRIES = 5  # a control races the driver's own saves (a bake's probes): try again


class Controls(Gates):
    async def _may_control(self, release: Release, user_id: str, what: str) -> None:
        policy_name = self.env_of(release).policy
        policy = self.config.policies[policy_name]
        members = await self._members(policy.deployers, policy.approvers)
        if user_id == release.requested_by or listed(user_id, policy.approvers, members):
            return
        refusal = deploy_refusal(policy_name, policy, user_id, members)
        if refusal:
            raise await self._refuse(user_id, what, refusal, release)

    def _note(self, release: Release, actor: str, action: str, **detail: object) -> AuditEntry:
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
        release = await self.get(release_id)
        await self._may_control(release, user_id, verb)
        if release.state not in (State.DEPLOYING, State.VERIFYING):
            raise await self._refuse(
                user_id,
                verb,
                f"{release.key} is not rolling out (it is {release.state.value.replace('_', ' ')})",
                release,
            )
        if verb == "roll back":
            await self._say(release, f":rewind: <@{user_id}> is rolling {release.key} back")
            return await self.roll_back(release, user_id, f"rolled back by <@{user_id}>")
        if verb == "pause":
            if release.paused:
                raise await self._refuse(user_id, verb, f"{release.key} is already paused", release)
            release.paused = True
        elif verb == "resume":
            if not release.paused:
                raise await self._refuse(user_id, verb, f"{release.key} is not paused", release)
            release.paused = False
        elif verb == "promote":
            if release.paused:
                raise await self._refuse(user_id, verb, f"resume {release.key} first", release)
            step = release.steps[release.current_step]
            step.gate = {**(step.gate or {}), "promote": True}
            entry = self._note(release, user_id, "release.promoted", step_percent=step.percent)
            saved = await self.repo.save(release, [entry], steps=(step,))
            await self._tell(saved, [entry])
            await self._say(saved, f":fast_forward: <@{user_id}> ended the bake at {step.percent}%")
            return await self.kick(release_id)
        else:
            raise NotFound(f"unknown control '{verb}'")
        entry = self._note(release, user_id, f"release.{verb}d")
        saved = await self.repo.save(release, [entry])
        await self._tell(saved, [entry])
        await self._say(
            saved,
            f":{'pause_button' if saved.paused else 'arrow_forward'}: "
            f"<@{user_id}> {verb}d {saved.key}",
        )
        if not saved.paused:
            return await self.kick(release_id)
        return saved

    async def request_rollback(
        self,
        service: str,
        environment: str | None,
        user_id: str,
        to: str | None,
        reason: str | None,
    ) -> Release | None:
        """``/release rollback``: the previous stable (or the named) version at 100%, in one
        deployment. A release rolling out there now is rolled back instead."""
        env_name, env = self._environment(service, environment)
        policy = self.config.policies[env.policy]
        members = await self._members(policy.deployers, policy.approvers)
        refusal = deploy_refusal(env.policy, policy, user_id, members)
        where = {"service": service, "environment": env_name}
        if refusal:
            raise await self._refuse(user_id, "roll back", refusal, **where)
        if policy.rollback_requires_reason and not reason:
            raise await self._refuse(
                user_id,
                "roll back",
                f'a rollback in {env_name} needs a reason: add --reason "..."',
                **where,
            )
        holder = await self.repo.active_for(service, env_name)
        if holder is not None:
            if to is not None:
                raise await self._refuse(
                    user_id,
                    "roll back",
                    f"{holder.key} is rolling out there; roll it back first "
                    f"(`{self.config.slack.command} rollback {service} in {env_name}`)",
                    **where,
                )
            why = f"rolled back by <@{user_id}>" + (f": {reason}" if reason else "")
            return await self.roll_back(holder, user_id, why)
        active = await self.edge.active_deployment(env.script)
        versions = await self.edge.list_versions(env.script)
        if to is not None:
            target = resolve_version(to, versions, env.script).id
        else:
            target = await self._previous_version(service, env_name, env.script)
        label = {v.id: v.tag for v in versions}.get(target)
        if active is not None and active.stable_version_id == target:
            raise await self._refuse(
                user_id,
                "roll back",
                f"{target[:8]} already serves 100% of {service}/{env_name}",
                **where,
            )
        draft = Release(
            service=service,
            environment=env_name,
            script=env.script,
            version_id=target,
            version_tag=label,
            requested_by=user_id,
            policy=env.policy,
            kind=Kind.ROLLBACK,
            strategy=Strategy.IMMEDIATE,
            plan=(100,),
            reason=reason,
            stable_version_id=active.stable_version_id if active else None,
            approvals_required=0 if policy.rollback_without_approval else policy.approvals_required,
        )
        release = await self._store_new(
            draft, auto_reason="break-glass rollback: no approval needed"
        )
        await self.notifier.announce(
            f":rewind: <@{user_id}> is rolling {service}/{env_name} back to "
            f"`{target[:8]}`{f' ({label})' if label else ''}" + (f": {reason}" if reason else "")
        )
        if release.state is State.APPROVED and release.id is not None:
            return await self.kick(release.id)
        return release

    async def _previous_version(self, service: str, environment: str, script: str) -> str:
        """The version at 100% before the last completed release there."""
        for past in await self.repo.history(service, environment, 50):
            if past.state is State.SUCCEEDED and past.stable_version_id:
                return past.stable_version_id
        found = previous_stable(await self.edge.list_deployments(script))
        if found is None:
            raise NotFound(
                f"no earlier version of {service}/{environment} was alone at 100%; "
                "name one: rollback ... to <version>"
            )
        return found

    def describe_failure(self, release: Release, step: Step, exc: Exception) -> str:
        if release.kind is Kind.ROLLBACK and isinstance(exc, EdgeRejected):
            label = release.version_tag or release.version_id[:8]
            return "Cloudflare refused the rollback. " + refusal_in_words(
                list(exc.codes), str(exc), label, command=self.config.slack.command
            )
        return super().describe_failure(release, step, exc)

    async def _deploy_step(self, release: Release, step: Step) -> bool:
        if release.kind is not Kind.RESTORE_DB:
            return await super()._deploy_step(release, step)
        database = self.env_of(release).d1_database_id
        assert database is not None and release.d1_bookmark is not None
        try:
            previous = await self.edge.d1_restore(database, release.d1_bookmark)
        except EdgeError as exc:
            await self.fail_safe(release, f"D1 refused the restore: {exc}")
            return False
        step.status = StepStatus.DEPLOYED
        step.deployed_at = self.clock.now()
        step.gate = {"previous_bookmark": previous}
        await self._transition(
            release,
            Event.STEP_DEPLOYED,
            BOT_ACTOR,
            steps=(step,),
            d1_bookmark=release.d1_bookmark,
            previous_bookmark=previous,
        )
        await self._say(
            release,
            f":floppy_disk: D1 restored to `{release.d1_bookmark}`; to undo, the "
            f"bookmark before the restore was `{previous}`.",
        )
        return True

    async def _verify_step(self, release: Release, step: Step) -> bool:
        if release.kind is not Kind.RESTORE_DB:
            return await super()._verify_step(release, step)
        step.status = StepStatus.PASSED
        await self._transition(release, Event.VERIFIED, BOT_ACTOR, steps=(step,), finished=True)
        await self.ended(release)
        return False

    async def request_restore(self, release_id: int, user_id: str) -> Release:
        """``/release restore-db``: a release of its own that restores the D1 bookmark taken
        before ``release_id``, under the production approval policy."""
        source = await self.get(release_id)
        env = self.env_of(source)
        if not source.d1_bookmark or not env.d1_database_id:
            raise Refused(f"{source.key} took no D1 bookmark; there is nothing to restore")
        policy_name = self.config.emergency_policy_name(env.policy)
        policy = self.config.policies[policy_name]
        members = await self._members(
            policy.deployers, policy.approvers, self.config.policies[env.policy].approvers
        )
        if not (user_id == source.requested_by or listed(user_id, policy.approvers, members)):
            refusal = deploy_refusal(env.policy, self.config.policies[env.policy], user_id, members)
            if refusal:
                raise await self._refuse(user_id, "restore-db", refusal, source)
        draft = Release(
            service=source.service,
            environment=source.environment,
            script=source.script,
            version_id=source.version_id,
            version_tag=source.version_tag,
            requested_by=user_id,
            policy=policy_name,
            kind=Kind.RESTORE_DB,
            strategy=Strategy.IMMEDIATE,
            plan=(100,),
            reason=f"restore D1 to the bookmark taken before {source.key}",
            d1_bookmark=source.d1_bookmark,
            approvals_required=policy.approvals_required,
        )
        return await self._store_new(draft)
