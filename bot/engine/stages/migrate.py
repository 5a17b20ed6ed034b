"""Migrations: the deploy's pending D1 migrations applied, then validated, before any traffic.

It runs once the release holds its environment — after the backup (the Time Travel bookmark
is stored with the start) and before the smoke test — for as long as the release's stored
plan (``Release.migrations``, worked out and shown before approval) is not done:

1. Which files are still to apply is read from the database's ``d1_migrations`` each time, so
   a restart (even ``kill -9`` in the middle) carries on from what the database says: a file
   is applied together with its ``d1_migrations`` row in one batch, so it is either applied
   and recorded or neither, and never applied twice. A file found recorded that the plan
   still shows pending was applied before the restart: it is audited then.
2. One file at a time, through D1's query API (``migration.applied`` per file, with its
   content hash). A file whose content changed since it was approved is not applied. A
   failing statement keeps nothing of its file, stops the release before traffic moves, and
   the audit (``migration.failed``) and the thread name the file.
3. Then the environment's ``validate`` checks; one that fails stops the release before any
   traffic moves (``migrations.validation_failed``) and the thread offers ``restore-db`` to
   the bookmark taken just before.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.config import Config
from bot.engine.errors import EdgeError, EdgeRejected, MigrationSourceError
from bot.engine.migrations import (
    CheckResult,
    FileStatus,
    MigrationFile,
    MigrationPlan,
    PlannedFile,
    PlanStatus,
    expectation_met,
)
from bot.engine.model import AuditEntry, Kind, Release, Step
from bot.engine.notices import MigrationsStopped
from bot.engine.ports import D1Migrations, MigrationSource
from bot.engine.recorder import BOT_ACTOR, Recorder
from bot.engine.reverter import Reverter
from bot.engine.states import State


class Migrate:
    name = "migrations"

    def __init__(
        self,
        config: Config,
        source: MigrationSource | None,
        d1: D1Migrations | None,
        recorder: Recorder,
        reverter: Reverter,
    ) -> None:
        self.config = config
        self.source = source
        self.d1 = d1
        self.recorder = recorder
        self.reverter = reverter

    def due(self, release: Release) -> bool:
        """A deploy at its first step whose stored migrations are not done yet."""
        if release.kind is not Kind.DEPLOY or release.state is not State.DEPLOYING:
            return False
        if release.current_step != 0 or self.source is None or self.d1 is None:
            return False
        plan = MigrationPlan.from_dict(release.migrations)
        # A plan stored as failed whose release is still deploying was stopped by a process
        # that died before it ended the release: it is due, to be ended, never passed over.
        return plan is not None and bool(plan.files) and plan.status != "validated"

    async def run(self, release: Release, step: Step) -> bool:
        plan = MigrationPlan.from_dict(release.migrations)
        assert plan is not None and self.d1 is not None
        if plan.status in ("failed", "invalid"):
            await self._end_stopped(release, plan)
            return False
        if plan.status == "applied":
            return await self._validate(release, plan)
        try:
            recorded = {a.name for a in await self.d1.applied_migrations(plan.database_id)}
        except EdgeError as exc:
            await self._stop(release, plan, None, f"could not read d1_migrations: {exc}")
            return False
        found = [f for f in plan.files if f.status in ("pending", "sent") and f.name in recorded]
        if found:  # applied before a restart (sent), or meanwhile by someone else (pending)
            entries = []
            for planned in found:
                ours = planned.status == "sent"
                plan = plan.with_file(_status(planned, "applied" if ours else "found"))
                entries.append(
                    self.recorder.entry(
                        release,
                        BOT_ACTOR,
                        "migration.applied" if ours else "migration.found_applied",
                        file=planned.name,
                        sha256=planned.sha256,
                        found_in_d1_migrations=True,
                    )
                )
            await self._save(release, plan, entries)
            return True
        upcoming = next((f for f in plan.files if f.status in ("pending", "sent")), None)
        if upcoming is None:
            await self._save(
                release,
                _with_status(plan, "applied"),
                [
                    self.recorder.entry(
                        release, BOT_ACTOR, "migrations.applied", files=len(plan.files)
                    )
                ],
            )
            return True
        migration = await self._file(release, plan, upcoming.name, upcoming.sha256)
        if migration is None:
            return False
        if upcoming.status == "pending":
            # stored before it is sent: a restart that finds it in d1_migrations knows whose
            upcoming = _status(upcoming, "sent")
            plan = plan.with_file(upcoming)
            release = await self._save(release, plan, [])
        try:
            await self.d1.apply_migration(plan.database_id, migration)
        except EdgeError as exc:
            return await self._after_refusal(release, plan, migration, exc)
        plan = plan.with_file(_status(upcoming, "applied"))
        await self._save(
            release,
            plan,
            [
                self.recorder.entry(
                    release,
                    BOT_ACTOR,
                    "migration.applied",
                    file=migration.name,
                    sha256=migration.sha256,
                    database_id=plan.database_id,
                )
            ],
        )
        return True

    async def _file(
        self, release: Release, plan: MigrationPlan, name: str, sha256: str
    ) -> MigrationFile | None:
        """The file as the source has it now, when it is still what was approved."""
        assert self.source is not None
        try:
            files = await self.source.migrations(release)
        except MigrationSourceError as exc:
            await self._stop(release, plan, name, f"could not read the migrations: {exc}")
            return None
        found = next((f for f in files if f.name == name), None)
        if found is None or found.sha256 != sha256:
            what = "is gone from" if found is None else "changed in"
            await self._stop(
                release,
                plan,
                name,
                f"migration {name} {what} the source since the release was approved; "
                "nothing of it was applied",
            )
            return None
        return found

    async def _after_refusal(
        self, release: Release, plan: MigrationPlan, migration: MigrationFile, exc: EdgeError
    ) -> bool:
        """A file D1 did not take — unless an earlier attempt whose answer was lost did:
        then ``d1_migrations`` names it (the second attempt failed on its unique name)."""
        assert self.d1 is not None
        read_back: EdgeError | None = None
        try:
            recorded = {a.name for a in await self.d1.applied_migrations(plan.database_id)}
        except EdgeError as again:
            recorded, read_back = set(), again
        if migration.name in recorded:
            return True  # the next run audits it as found applied
        planned = plan.file(migration.name)
        assert planned is not None
        failed = plan.with_file(_status(planned, "failed", str(exc)))
        if isinstance(exc, EdgeRejected):  # D1 answered: the batch was rolled back
            why = f"migration {migration.name} failed, and nothing of it was kept: {exc}"
        elif read_back is not None:
            command = (
                f"{self.config.slack.command} migrations {release.service} {release.environment}"
            )
            why = (
                f"migration {migration.name} has no known outcome: D1 did not answer ({exc}) "
                f"and d1_migrations could not be read back ({read_back}); `{command}` shows "
                "whether it was applied"
            )
        else:
            why = (
                f"migration {migration.name} was not applied: D1 did not answer ({exc}) and "
                "d1_migrations does not list it"
            )
        await self._stop(_with(release, failed), failed, migration.name, why)
        return False

    async def _validate(self, release: Release, plan: MigrationPlan) -> bool:
        assert self.d1 is not None
        env = self.config.services[release.service].environments[release.environment]
        checks = env.migrations.checks if env.migrations is not None else []
        results: list[CheckResult] = []
        for check in checks:
            try:
                answers = await self.d1.d1_query(plan.database_id, check.sql)
                rows = answers[-1] if answers else []
                ok, got = expectation_met(check.expect, rows)
            except EdgeError as exc:
                ok, got = False, f"the query failed: {exc}"
            results.append(CheckResult(check.sql, check.expect, _bounded(_plain(got)), ok))
        stored = _with_status(plan, "validated", tuple(r.to_dict() for r in results))
        failed = [r for r in results if not r.ok]
        if failed:
            stored = _with_status(plan, "invalid", tuple(r.to_dict() for r in results))
            first = failed[0]
            why = (
                f"the check {_clip(repr(first.sql))} after the migrations expected "
                f"{_clip(repr(first.expected))} and got {_clip(repr(first.got))}"
            )
            await self._stop(
                _with(release, stored), stored, None, why, action="migrations.validation_failed"
            )
            return False
        await self._save(
            release,
            stored,
            [
                self.recorder.entry(
                    release,
                    BOT_ACTOR,
                    "migrations.validated",
                    checks=[r.to_dict() for r in results],
                )
            ],
        )
        return True

    async def _end_stopped(self, release: Release, plan: MigrationPlan) -> None:
        """End a release whose migrations were stopped (and audited) by a process that died
        before it ended the release: nothing moves to the new version."""
        failed = next((f for f in plan.files if f.status == "failed"), None)
        if failed is not None:
            why = f"migration {failed.name} failed, and nothing of it was kept: {failed.error}"
        elif plan.status == "invalid":
            why = "a check after the migrations failed (see the audit trail)"
        else:
            why = "the migrations were stopped (see the audit trail)"
        why += "; the release was stopped before a restart and is ended now"
        await self.reverter.fail_safe(release, why, before_traffic=True)
        applied = tuple(f.name for f in plan.files if f.status in ("applied", "found"))
        await self.recorder.say(
            MigrationsStopped(
                release, why, failed.name if failed else None, applied, self.config.slack.command
            )
        )

    # -- storing -----------------------------------------------------------------------------

    async def _save(
        self, release: Release, plan: MigrationPlan, entries: list[AuditEntry]
    ) -> Release:
        return await self.recorder.save(_with(release, plan), entries)

    async def _stop(
        self,
        release: Release,
        plan: MigrationPlan,
        file: str | None,
        why: str,
        *,
        action: str = "migration.failed",
    ) -> None:
        """Audit why, then end the release before any traffic moved (the stable version still
        serves everyone), and say which file and what a restore would do."""
        if plan.status != "invalid":
            plan = _with_status(plan, "failed", plan.checks)
        detail: dict[str, object] = {"reason": why, "database_id": plan.database_id}
        if file is not None:
            detail["file"] = file
        if plan.checks:
            detail["checks"] = list(plan.checks)
        saved = await self._save(
            release, plan, [self.recorder.entry(release, BOT_ACTOR, action, **detail)]
        )
        await self.reverter.fail_safe(saved, why, before_traffic=True)
        applied = tuple(f.name for f in plan.files if f.status in ("applied", "found"))
        await self.recorder.say(
            MigrationsStopped(saved, why, file, applied, self.config.slack.command)
        )


def _status(planned: PlannedFile, status: FileStatus, error: str | None = None) -> PlannedFile:
    return replace(planned, status=status, error=error)


def _with_status(
    plan: MigrationPlan, status: PlanStatus, checks: tuple[dict[str, Any], ...] | None = None
) -> MigrationPlan:
    return replace(plan, status=status, checks=plan.checks if checks is None else checks)


def _with(release: Release, plan: MigrationPlan) -> Release:
    return release.copy(migrations=plan.to_dict())


# What a failed check keeps of what it got, in the plan, the audit and the thread.
GOT_ROWS = 10
SHOWN_CHARS = 400


def _bounded(got: Any) -> Any:
    """The first ``GOT_ROWS`` rows a check got (and how many more there were)."""
    if isinstance(got, list) and len(got) > GOT_ROWS:
        return [*got[:GOT_ROWS], f"… and {len(got) - GOT_ROWS} more rows"]
    return got


def _clip(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _plain(value: Any) -> Any:
    """What a check got, as plain JSON data (rows hold SQLite's values)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
