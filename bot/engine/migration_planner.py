"""Working out a deploy's D1 migrations before anyone approves it, and the facts the policy
decides them on: the lint's findings and the staging-first rule (by file name and content
hash: a file counts as tested when a release applied exactly that content in the
``requires_success_in`` environment)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Config
from bot.engine.migrations import (
    AppliedMigration,
    MigrationFile,
    MigrationPlan,
    pending_of,
    plan_of,
)
from bot.engine.model import Kind, Release
from bot.engine.ports import (
    READ_FRESH,
    D1Migrations,
    MigrationLinter,
    MigrationSource,
    ReleaseRepository,
)
from bot.engine.words import Code, Words, words

LEDGER_PAGE = 200  # releases read at a time for the migrations applied in an environment


@dataclass(frozen=True, slots=True)
class MigrationListing:
    """``/release migrations``: what the database's ``d1_migrations`` holds and what the
    source has that it does not."""

    service: str
    environment: str
    database_id: str
    applied: tuple[AppliedMigration, ...]
    pending: tuple[MigrationFile, ...]


class MigrationPlanner:
    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        source: MigrationSource | None,
        d1: D1Migrations | None,
        linter: MigrationLinter | None,
    ) -> None:
        self.config = config
        self.repo = repo
        self.source = source
        self.d1 = d1
        self.linter = linter

    def configured(self, service: str, environment: str) -> bool:
        env = self.config.services[service].environments[environment]
        return env.migrations is not None and self.source is not None and self.d1 is not None

    async def plan(self, draft: Release) -> MigrationPlan | None:
        """The pending migrations of a deploy, linted against the database's schema now;
        None where the environment has no migrations."""
        if draft.kind is not Kind.DEPLOY or not self.configured(draft.service, draft.environment):
            return None
        assert self.source is not None and self.d1 is not None
        env = self.config.services[draft.service].environments[draft.environment]
        assert env.d1_database_id is not None
        files = await self.source.migrations(draft)
        applied = await self.d1.applied_migrations(env.d1_database_id, READ_FRESH)
        pending = pending_of(files, applied)
        findings = {}
        if pending and self.linter is not None:
            definitions = await self.d1.table_definitions(env.d1_database_id, READ_FRESH)
            findings = self.linter.lint_all(pending, definitions)
        return plan_of(env.d1_database_id, pending, findings)

    async def staging_refusal(self, draft: Release, plan: MigrationPlan | None) -> Words | None:
        """The staging-first objection: a pending file not yet applied, with this content, in
        the environment the policy's ``requires_success_in`` names."""
        if plan is None or not plan.files:
            return None
        earlier = self.config.policies[draft.policy].requires_success_in
        if not earlier or earlier == draft.environment:
            return None
        tested = await self.applied_in(
            draft.service, earlier, {(f.name, f.sha256) for f in plan.files}
        )
        for planned in plan.files:
            seen = tested.get(planned.name)
            if seen is None:
                return words(
                    "migration ",
                    Code(planned.name),
                    f" has not been applied in {earlier} yet; deploy it there first "
                    f"(requires_success_in: {earlier})",
                )
            if planned.sha256 not in seen:
                return words(
                    "migration ",
                    Code(planned.name),
                    f" differs from the one applied in {earlier} (content hash "
                    f"{planned.sha256[:12]} here); a file must not change after it ran there",
                )
        return None

    async def applied_in(
        self, service: str, environment: str, wanted: set[tuple[str, str]] | None = None
    ) -> dict[str, set[str]]:
        """File name → the content hashes the bot applied in service/environment, from its
        whole history there, newest first (``LEDGER_PAGE`` releases a read); with ``wanted``
        (name, hash) pairs, it stops once all of them are found."""
        found: dict[str, set[str]] = {}
        before: int | None = None
        while True:
            page = await self.repo.history(service, environment, LEDGER_PAGE, before)
            for past in page:
                stored = MigrationPlan.from_dict(past.migrations)
                if stored is None:
                    continue
                for planned in stored.files:
                    if planned.status == "applied":
                        found.setdefault(planned.name, set()).add(planned.sha256)
            if wanted is not None and all(h in found.get(n, ()) for n, h in wanted):
                return found
            if len(page) < LEDGER_PAGE or page[-1].id is None:
                return found
            before = page[-1].id

    async def listing(self, service: str, environment: str, probe: Release) -> MigrationListing:
        """Applied and pending migrations of service/environment (``probe``: a release
        standing for what would be deployed, for the source)."""
        assert self.source is not None and self.d1 is not None
        env = self.config.services[service].environments[environment]
        assert env.d1_database_id is not None
        applied = await self.d1.applied_migrations(env.d1_database_id, READ_FRESH)
        files = await self.source.migrations(probe)
        return MigrationListing(
            service,
            environment,
            env.d1_database_id,
            tuple(applied),
            tuple(pending_of(files, applied)),
        )
