"""The migration stage with the engine's fakes and real SQLite databases (the simulator's D1):
pending files apply in order before any traffic moves, each recorded as wrangler records it;
a failure stops the release and names the file; the lint's findings and staging first are
decided by the policy; validation failures offer restore-db; a restart never applies a file
twice."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.cloudflare.sim_state import SimulatorState
from bot.config import parse_config
from bot.d1.folder import FolderSource
from bot.d1.lint import SqliteLinter
from bot.engine.errors import Refused
from bot.engine.migrations import MigrationPlan
from bot.engine.model import Release, VersionShare
from bot.engine.notices import MigrationsStopped
from bot.engine.reverter import Reverter
from bot.engine.service import DeployRequest, ReleaseService
from bot.engine.states import State
from bot.slack.blocks import views
from bot.slack.render import render
from tests.fakes import (
    FakeClock,
    FakeDirectory,
    FakeEdge,
    FakeRails,
    FakeReleaseRepository,
    FakeTimers,
    FakeVotes,
    ProcessKilled,
    RecordingNotifier,
    SimD1,
)

STAGING_DB = "0b5c0a52-0d7e-4b8e-9a61-7c1d2e3f4a01"
PRODUCTION_DB = "0b5c0a52-0d7e-4b8e-9a61-7c1d2e3f4a02"

USERS = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n"
RECEIPTS = (
    "CREATE TABLE receipts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL "
    "REFERENCES users(id), total INTEGER NOT NULL DEFAULT 0);\n"
    "CREATE INDEX idx_receipts_user ON receipts (user_id);\n"
)


class SimEdge(FakeEdge):
    """The fake account, with D1 Time Travel from the simulator's real databases."""

    def __init__(self, state: SimulatorState) -> None:
        super().__init__()
        self.state = state
        self.restores: list[str] = []

    async def d1_bookmark(self, database_id: str) -> str:
        return self.state.database(database_id).current

    async def d1_restore(self, database_id: str, bookmark: str) -> str:
        previous = self.state.database(database_id).current
        self.restores.append(bookmark)
        self.state.d1_restore(database_id, bookmark)
        return previous


def config(folder: Path, **production: Any) -> dict[str, Any]:
    migrations = {"path": str(folder), "migrations_dir": "migrations"}
    return {
        "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
        "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
        "policies": {
            "staging": {"approvals_required": 0},
            "production": {
                "approvals_required": 1,
                "approvers": ["U0ALICE", "U0BOB"],
                "deployers": ["U0CAROL"],
                "requires_success_in": "staging",
            },
        },
        "services": {
            "tax-api": {
                "environments": {
                    "staging": {
                        "script": "tax-api-staging",
                        "policy": "staging",
                        "d1_database_id": STAGING_DB,
                        "migrations": migrations,
                    },
                    "production": {
                        "script": "tax-api",
                        "policy": "production",
                        "d1_database_id": PRODUCTION_DB,
                        "migrations": {**migrations, **production},
                    },
                }
            }
        },
    }


class World:
    def __init__(self, tmp_path: Path, **production: Any) -> None:
        self.folder = tmp_path / "migrations"
        self.folder.mkdir()
        self.cf = SimulatorState()
        self.cf.add_database("tax-db-staging", STAGING_DB)
        self.cf.add_database("tax-db", PRODUCTION_DB)
        self.edge = SimEdge(self.cf)
        self.d1 = SimD1(self.cf)
        self.repo = FakeReleaseRepository()
        self.notifier = RecordingNotifier()
        self.clock = FakeClock()
        self.timers = FakeTimers()
        self.config = parse_config(config(tmp_path, **production))
        for script in ("tax-api", "tax-api-staging"):
            stable = self.edge.add_version(script, "v1.4.1")
            self.edge.add_version(script, "v1.4.2")
            self.edge.put_live(script, VersionShare(stable, 100))
            # the same build uploaded to both scripts: the same content hash
            self.edge.versions[script] = [
                replace(v, etag=f"etag-{v.tag}") for v in self.edge.versions[script]
            ]
        self.service = self.make_service()

    def make_service(self) -> ReleaseService:
        """A fresh service on the same stores (as after a restart)."""
        return ReleaseService(
            self.config,
            self.repo,
            self.edge,
            self.notifier,
            self.clock,
            votes=FakeVotes(self.repo),
            timers=self.timers,
            rails=FakeRails(self.repo),
            directory=FakeDirectory({}),
            migration_source=FolderSource(self.config),
            d1=self.d1,
            linter=SqliteLinter(),
        )

    def write(self, name: str, sql: str) -> None:
        (self.folder / name).write_text(sql)

    async def deploy(self, env: str = "staging") -> Release:
        started = await self.service.deploy(DeployRequest("tax-api", "v1.4.2", "U0CAROL", env))
        assert started.release.id is not None
        found = await self.repo.get(started.release.id)
        assert found is not None
        return found

    def rows(self, db: str, sql: str) -> list[dict[str, Any]]:
        return self.cf.d1_query(db, sql)[0]["results"]

    def applied(self, db: str = STAGING_DB) -> list[str]:
        return [r["name"] for r in self.rows(db, "SELECT name FROM d1_migrations ORDER BY id")]

    def actions(self) -> list[str]:
        return [e.action for e in self.repo.audit]

    def audit(self, action: str) -> list[dict[str, Any]]:
        return [e.detail for e in self.repo.audit if e.action == action]


def validating(tmp_path: Path, checks: list[dict[str, Any]]) -> World:
    """A world whose staging runs ``checks`` after its migrations (migrations in tmp_path)."""
    world = World(tmp_path)
    world.config = parse_config(
        config(tmp_path)
        | {
            "services": {
                "tax-api": {
                    "environments": {
                        "staging": {
                            "script": "tax-api-staging",
                            "policy": "staging",
                            "d1_database_id": STAGING_DB,
                            "migrations": {"path": str(tmp_path), "validate": checks},
                        }
                    }
                }
            }
        }
    )
    world.service = world.make_service()
    return world


async def test_two_pending_migrations_apply_in_order_before_traffic(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("0002_receipts.sql", RECEIPTS)
    world.write("0001_users.sql", USERS)

    final = await world.deploy()

    assert final.state is State.SUCCEEDED, final.outcome
    assert world.applied() == ["0001_users.sql", "0002_receipts.sql"]
    tables = world.rows(STAGING_DB, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert {"users", "receipts", "d1_migrations"} <= {t["name"] for t in tables}
    # wrangler's columns, filled as wrangler fills them
    row = world.rows(STAGING_DB, "SELECT * FROM d1_migrations WHERE id = 1")[0]
    assert set(row) == {"id", "name", "applied_at"} and row["applied_at"]
    actions = world.actions()
    assert actions.index("release.started") < actions.index("migration.applied")
    assert actions.index("migrations.validated") < actions.index("release.step_deployed")
    assert [d["file"] for d in world.audit("migration.applied")] == [
        "0001_users.sql",
        "0002_receipts.sql",
    ]
    plan = MigrationPlan.from_dict(final.migrations)
    assert plan is not None and plan.status == "validated"
    assert [f.status for f in plan.files] == ["applied", "applied"]

    # the next release finds nothing pending and changes nothing
    again = await world.deploy()
    assert again.state is State.SUCCEEDED
    assert MigrationPlan.from_dict(again.migrations) == MigrationPlan(STAGING_DB)
    assert world.d1.applies == ["0001_users.sql", "0002_receipts.sql"]


async def test_a_failing_statement_stops_the_release_before_traffic(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    world.write("0002_broken.sql", "CREATE TABLE notes (body TEXT);\nINSERT INTO nope VALUES (1);")
    world.write("0003_later.sql", RECEIPTS)

    final = await world.deploy()

    assert final.state is State.FAILED
    assert world.edge.deploy_calls == []  # no traffic moved, not even a 0% deployment
    assert world.applied() == ["0001_users.sql"]
    # nothing of the failed file was kept
    tables = world.rows(STAGING_DB, "SELECT name FROM sqlite_master WHERE name = 'notes'")
    assert tables == []
    (failed,) = world.audit("migration.failed")
    assert failed["file"] == "0002_broken.sql"
    assert "no such table: nope" in failed["reason"]
    assert "0002_broken.sql" in (final.outcome or "")
    (stopped,) = [n for n in world.notifier.notices if isinstance(n, MigrationsStopped)]
    assert stopped.applied == ("0001_users.sql",)
    text = " ".join(p.text for p in render(stopped))
    assert "0002_broken.sql" in text and "restore-db R-1" in text


async def test_a_drop_column_is_refused_by_default(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    await world.deploy()
    world.write("0002_drop.sql", "ALTER TABLE users DROP COLUMN email;")

    with pytest.raises(Refused, match=r"would break the running version.*0002_drop\.sql"):
        await world.deploy()
    assert world.applied() == ["0001_users.sql"]
    assert "refused" in world.actions()


async def test_a_drop_column_with_destructive_approve_needs_the_emergency_approvals(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.config = parse_config(
        {
            **config(tmp_path),
            "policies": {
                "staging": {"approvals_required": 0},
                "production": {"approvals_required": 2, "approvers": ["U0ALICE", "U0BOB"]},
            },
            "emergency_policy": "production",
        }
        | {
            "services": {
                "tax-api": {
                    "environments": {
                        "staging": {
                            "script": "tax-api-staging",
                            "policy": "staging",
                            "d1_database_id": STAGING_DB,
                            "migrations": {"path": str(tmp_path), "destructive": "approve"},
                        }
                    }
                }
            }
        }
    )
    world.service = world.make_service()
    world.write("0001_users.sql", USERS)
    await world.deploy()
    world.write("0002_drop.sql", "ALTER TABLE users DROP COLUMN email;")

    waiting = await world.deploy()
    assert waiting.state is State.AWAITING_APPROVAL
    assert waiting.approvals_required == 2  # the emergency policy's, on a policy needing none
    assert world.applied() == ["0001_users.sql"]
    assert waiting.id is not None
    await world.service.decide(waiting.id, "U0ALICE", True)
    final = await world.service.decide(waiting.id, "U0BOB", True)

    final = await world.repo.get(waiting.id) or final
    assert final.state is State.SUCCEEDED, final.outcome
    assert world.applied() == ["0001_users.sql", "0002_drop.sql"]
    columns = world.rows(STAGING_DB, "PRAGMA table_info(users)")
    assert [c["name"] for c in columns] == ["id"]


async def test_production_refuses_a_migration_not_applied_in_staging(tmp_path: Path) -> None:
    world = World(tmp_path)
    await world.deploy("staging")  # the version itself ran there, without migrations
    world.write("0001_users.sql", USERS)

    with pytest.raises(Refused, match=r"0001_users\.sql has not been applied in staging"):
        await world.deploy("production")

    await world.deploy("staging")
    waiting = await world.deploy("production")
    assert waiting.state is State.AWAITING_APPROVAL

    # a file changed after it ran in staging is not the file that was tested
    world.write("0002_receipts.sql", RECEIPTS)
    await world.deploy("staging")
    world.write("0002_receipts.sql", RECEIPTS + "CREATE INDEX idx_total ON receipts (total);\n")
    assert waiting.id is not None
    await world.service.cancel(waiting.id, "U0CAROL")
    with pytest.raises(Refused, match=r"0002_receipts\.sql differs from the one applied"):
        await world.deploy("production")


async def test_a_file_applied_outside_the_release_is_found_not_counted_as_tested(
    tmp_path: Path,
) -> None:
    """Someone runs ``wrangler d1 migrations apply`` on production while the release waits
    for approval: the release finds the file applied and goes on, but records it as found
    (its content is not vouched for), and staging-first does not count such a file."""
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    await world.deploy("staging")
    waiting = await world.deploy("production")
    assert waiting.state is State.AWAITING_APPROVAL and waiting.id is not None
    # what wrangler sends: the file and its d1_migrations row, in one batch
    world.cf.d1_query(
        PRODUCTION_DB,
        "CREATE TABLE IF NOT EXISTS d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "name TEXT UNIQUE, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);"
        + USERS
        + "INSERT INTO d1_migrations (name) VALUES ('0001_users.sql');",
    )

    await world.service.decide(waiting.id, "U0ALICE", True)

    final = await world.repo.get(waiting.id)
    assert final is not None and final.state is State.SUCCEEDED, final and final.outcome
    plan = MigrationPlan.from_dict(final.migrations)
    assert plan is not None and [f.status for f in plan.files] == ["found"]
    assert world.d1.applies == ["0001_users.sql"]  # staging's; production's was not sent
    found = world.audit("migration.found_applied")
    assert [d["file"] for d in found] == ["0001_users.sql"]
    # what production found is not what a release applied there
    tested = await world.service.planner.applied_in("tax-api", "production")
    assert tested == {}
    assert "0001_users.sql" in await world.service.planner.applied_in("tax-api", "staging")


async def test_a_failing_validation_offers_restore_db_which_brings_the_schema_back(
    tmp_path: Path,
) -> None:
    checks = [
        {"sql": "PRAGMA integrity_check", "expect": "ok"},
        {"sql": "SELECT count(*) AS n FROM users", "expect": {"at_least": 1}},
    ]
    world = validating(tmp_path, checks)
    world.write("0001_users.sql", USERS)

    final = await world.deploy()

    assert final.state is State.FAILED
    assert world.edge.deploy_calls == []
    (failed,) = world.audit("migrations.validation_failed")
    assert [c["ok"] for c in failed["checks"]] == [True, False]
    (stopped,) = [n for n in world.notifier.notices if isinstance(n, MigrationsStopped)]
    text = " ".join(p.text for p in render(stopped))
    assert "restore-db R-1" in text and "10 restores per database every 10 minutes" in text
    assert final.d1_bookmark is not None

    assert final.id is not None
    restore = await world.service.request_restore(final.id, "U0CAROL")
    assert restore.state is State.AWAITING_APPROVAL  # under the emergency policy
    assert restore.id is not None
    await world.service.decide(restore.id, "U0ALICE", True)
    assert world.edge.restores == [final.d1_bookmark]
    tables = world.rows(STAGING_DB, "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert tables == []  # back to before the migration: no users, no d1_migrations


async def test_a_check_that_gets_many_rows_keeps_ten_and_the_restore_offer(
    tmp_path: Path,
) -> None:
    """A check expecting no rows gets 400: the plan, the audit and the thread keep ten of
    them and how many more, and the thread still offers the restore."""
    checks = [{"sql": "SELECT id, email FROM users", "expect": []}]
    world = validating(tmp_path, checks)
    rows = ", ".join(f"('user{i}@example.com')" for i in range(400))
    world.write("0001_users.sql", USERS + f"\nINSERT INTO users (email) VALUES {rows};")

    final = await world.deploy()

    assert final.state is State.FAILED
    (failed,) = world.audit("migrations.validation_failed")
    got = failed["checks"][0]["got"]
    assert len(got) == 11 and got[-1] == "… and 390 more rows"
    (stopped,) = [n for n in world.notifier.notices if isinstance(n, MigrationsStopped)]
    (text, *_) = [p.text for p in render(stopped)]
    assert len(text) < 3000 and "restore-db R-1" in text


async def test_a_restart_resumes_from_d1_migrations_without_applying_twice(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    world.write("0002_receipts.sql", RECEIPTS)
    # the first file's batch commits on D1, then the process dies before it stores anything
    world.d1.die_after_next_batch = True

    with pytest.raises(ProcessKilled):
        await world.deploy()

    (first,) = world.repo.releases.values()
    assert first.state is State.DEPLOYING
    plan = MigrationPlan.from_dict(first.migrations)
    # the first file was stored as sent before its batch went to D1
    assert plan is not None and [f.status for f in plan.files] == ["sent", "pending"]
    assert world.applied() == ["0001_users.sql"]

    world.clock.advance(60)  # the dead process's lease runs out
    world.service = world.make_service()  # a restart
    assert first.id is not None
    await world.service.kick(first.id)

    final = await world.repo.get(first.id)
    assert final is not None and final.state is State.SUCCEEDED, final and final.outcome
    assert world.applied() == ["0001_users.sql", "0002_receipts.sql"]
    assert world.d1.applies == ["0001_users.sql", "0002_receipts.sql"]  # each sent once
    applied = world.audit("migration.applied")
    assert [(d["file"], d.get("found_in_d1_migrations", False)) for d in applied] == [
        ("0001_users.sql", True),
        ("0002_receipts.sql", False),
    ]


async def test_a_process_killed_while_it_stops_a_failed_migration_never_moves_traffic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed file is stored and audited, then the process dies before it ends the
    release: after a restart the release is ended, and nothing is deployed."""
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    world.write("0002_broken.sql", "INSERT INTO nope VALUES (1);")
    real = Reverter.fail_safe
    calls: list[str] = []

    async def dies_once(self: Reverter, release: Release, why: str, **kw: Any) -> None:
        calls.append(why)
        if len(calls) == 1:
            raise ProcessKilled("killed after the failure was stored")
        await real(self, release, why, **kw)

    monkeypatch.setattr(Reverter, "fail_safe", dies_once)
    with pytest.raises(ProcessKilled):
        await world.deploy()
    (first,) = world.repo.releases.values()
    assert first.state is State.DEPLOYING
    plan = MigrationPlan.from_dict(first.migrations)
    assert plan is not None and plan.status == "failed"

    world.clock.advance(60)  # the dead process's lease runs out
    world.service = world.make_service()  # a restart
    assert first.id is not None
    await world.service.kick(first.id)

    final = await world.repo.get(first.id)
    assert final is not None and final.state is State.FAILED, final and final.outcome
    assert world.edge.deploy_calls == []  # no smoke deployment, no traffic step
    assert "0002_broken.sql" in (final.outcome or "")
    assert world.audit("migration.failed")[0]["file"] == "0002_broken.sql"
    assert "release.step_deployed" not in world.actions()
    (stopped,) = [n for n in world.notifier.notices if isinstance(n, MigrationsStopped)]
    assert stopped.file == "0002_broken.sql" and stopped.applied == ("0001_users.sql",)


async def test_a_lost_answer_is_read_back_from_d1_migrations(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    world.d1.lose_next_answer = True

    final = await world.deploy()

    assert final.state is State.SUCCEEDED, final.outcome
    assert world.d1.applies == ["0001_users.sql"]
    assert world.audit("migration.applied")[0]["found_in_d1_migrations"] is True


async def test_release_migrations_lists_applied_and_pending(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    await world.deploy()
    world.write("0002_receipts.sql", RECEIPTS)

    listing = await world.service.migrations_of("tax-api", "staging")

    assert [a.name for a in listing.applied] == ["0001_users.sql"]
    assert [p.name for p in listing.pending] == ["0002_receipts.sql"]
    text, blocks = views.migrations_view(listing)
    assert "`0001_users.sql` · applied " in text and "`0002_receipts.sql`" in text
    assert blocks[0]["text"]["text"] == "Migrations: tax-api / staging"
    # reading creates nothing: a database never migrated has no d1_migrations table
    empty = await world.service.migrations_of("tax-api", "production")
    assert listing.applied and empty.applied == ()
    assert world.rows(PRODUCTION_DB, "SELECT name FROM sqlite_master") == []


async def test_a_lost_answer_that_cannot_be_read_back_is_not_called_nothing_kept(
    tmp_path: Path,
) -> None:
    """D1 does not answer and d1_migrations cannot be read back: the release stops before
    traffic, saying the outcome is not known and how to look, not that nothing was kept."""
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    world.d1.drop_next_batch = True
    world.d1.read_back_fails = True

    final = await world.deploy()

    assert final.state is State.FAILED
    assert world.edge.deploy_calls == []
    outcome = final.outcome or ""
    assert "0001_users.sql has no known outcome" in outcome, outcome
    assert "/release migrations tax-api staging" in outcome and "nothing of it" not in outcome


async def test_a_lost_answer_read_back_without_the_file_says_it_was_not_applied(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    world.d1.drop_next_batch = True

    final = await world.deploy()

    assert final.state is State.FAILED
    assert "0001_users.sql was not applied: D1 did not answer" in (final.outcome or "")
    tables = world.rows(STAGING_DB, "SELECT name FROM sqlite_master WHERE name = 'users'")
    assert tables == []


async def test_staging_first_looks_through_the_whole_history(tmp_path: Path) -> None:
    """The file ran in staging 450 releases ago: it still counts as tested there."""
    world = World(tmp_path)
    world.write("0001_users.sql", USERS)
    first = await world.deploy("staging")
    plan = MigrationPlan.from_dict(first.migrations)
    assert plan is not None and [f.status for f in plan.files] == ["applied"]
    for _ in range(450):  # later staging releases without migrations
        later = replace(first, id=None, migrations=None)
        await world.repo.create(later, [])
    wanted = {(f.name, f.sha256) for f in plan.files}

    tested = await world.service.planner.applied_in("tax-api", "staging", wanted)

    assert tested == {"0001_users.sql": {plan.files[0].sha256}}
    waiting = await world.deploy("production")
    assert waiting.state is State.AWAITING_APPROVAL
