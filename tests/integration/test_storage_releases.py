"""SqlReleaseRepository on SQLite and PostgreSQL: round trips, revisions, the one-active-release
rule, and audit records that commit (or not) with the change they describe."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.engine.errors import ConcurrentUpdate, NotFound, Refused
from bot.engine.model import AuditEntry, Kind, Release, Step, StepStatus, Strategy, Vote
from bot.engine.states import State
from storage.audit import verify_chain
from storage.db import create_engine
from storage.repositories import SqlReleaseRepository, SqlVoteRepository
from storage.tables import audit_events, releases

pytest_plugins = ["tests.fixtures.db"]

NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


MakeRelease = Callable[..., Release]


def entry(action: str, **kw: object) -> AuditEntry:
    return AuditEntry(actor="U0ALICE", action=action, at=NOW, **kw)  # type: ignore[arg-type]


async def test_create_assigns_an_id_and_reads_back_every_field(
    repo: SqlReleaseRepository, make_release: MakeRelease
):
    release = make_release(
        kind=Kind.ROLLBACK,
        strategy=Strategy.GRADUAL,
        version_tag="v1.2.3",
        version_message="fix rounding",
        stable_version_id="stable-1",
        reason="hotfix",
        emergency=True,
        approvals_required=2,
        current_step=0,
        paused=True,
        d1_bookmark="bm-1",
        migrations={"database_id": "db-1", "files": [{"name": "0001_a.sql", "sha256": "ab"}]},
        expires_at=NOW + timedelta(hours=1),
        steps=[Step(0, 10, intended_at=NOW, gate={"error_rate": 0.001})],
    )
    stored = await repo.create(release, [entry("release.requested")])

    assert stored.id is not None and stored.key == f"R-{stored.id}"
    got = await repo.get(stored.id)
    assert got == stored
    assert got is not None and got.created_at == NOW and got.created_at.tzinfo is not None
    assert got.plan == (10, 50, 100) and got.steps[0].gate == {"error_rate": 0.001}
    assert got.migrations is not None and got.migrations["files"][0]["name"] == "0001_a.sql"


async def test_get_unknown_release_is_none(repo: SqlReleaseRepository):
    assert await repo.get(999) is None


async def test_save_bumps_revision_and_upserts_steps(
    repo: SqlReleaseRepository, make_release: MakeRelease
):
    stored = await repo.create(make_release(), [])
    approved = await repo.save(stored.copy(state=State.APPROVED), [entry("release.approved")])
    assert approved.revision == stored.revision + 1

    step = Step(0, 10, intended_at=NOW)
    deploying = await repo.save(approved.copy(state=State.DEPLOYING, current_step=0), [], [step])
    deployed = Step(0, 10, StepStatus.DEPLOYED, "dep-1", NOW, NOW + timedelta(seconds=3))
    verifying = await repo.save(deploying.copy(state=State.VERIFYING), [], [deployed])
    second = Step(1, 50, intended_at=NOW)
    last = await repo.save(verifying.copy(state=State.DEPLOYING, current_step=1), [], [second])

    got = await repo.get(stored.id or 0)
    assert got == last
    assert got is not None and got.revision == 4
    assert [(s.index, s.status, s.deployment_id) for s in got.steps] == [
        (0, StepStatus.DEPLOYED, "dep-1"),
        (1, StepStatus.INTENDED, None),
    ]


async def test_stale_revision_raises_concurrent_update_and_changes_nothing(
    repo: SqlReleaseRepository,
    make_release: MakeRelease,
):
    stored = await repo.create(make_release(), [])
    await repo.save(stored.copy(reason="first"), [])
    with pytest.raises(ConcurrentUpdate, match=stored.key):
        await repo.save(stored.copy(reason="second"), [entry("lost")], [Step(0, 10)])
    got = await repo.get(stored.id or 0)
    assert got is not None and got.reason == "first" and got.steps == []
    assert [e.action for e in await repo.audit_for(stored.id or 0)] == []


async def test_a_second_active_release_for_the_same_target_is_refused(
    repo: SqlReleaseRepository,
    make_release: MakeRelease,
):
    first = await repo.create(make_release(state=State.DEPLOYING), [entry("release.approved")])
    with pytest.raises(
        Refused, match=rf"tax-api/production already has an active release {first.key}"
    ):
        await repo.create(make_release(state=State.DEPLOYING), [entry("release.approved")])

    other_env = await repo.create(make_release(environment="staging", state=State.DEPLOYING), [])
    waiting = await repo.create(make_release(state=State.APPROVED), [])
    with pytest.raises(Refused, match=first.key):
        await repo.save(waiting.copy(state=State.DEPLOYING), [])

    assert (await repo.active_for("tax-api", "production")) == first
    assert (await repo.active_for("tax-api", "staging")) == other_env
    # Approved releases wait in line without holding the target.
    assert [r.id for r in await repo.queued("tax-api", "production")] == [waiting.id]
    # Finishing the first frees the target.
    await repo.save(first.copy(state=State.SUCCEEDED, finished_at=NOW), [])
    await repo.save(waiting.copy(state=State.DEPLOYING), [])
    assert (await repo.active_for("tax-api", "production")).id == waiting.id  # type: ignore[union-attr]


async def test_racing_saves_let_exactly_one_release_become_active(
    db_url: str, make_release: MakeRelease
):
    engines = [create_engine(db_url), create_engine(db_url)]
    try:
        repos = [SqlReleaseRepository(e) for e in engines]
        waiting = [await repos[0].create(make_release(state=State.APPROVED), []) for _ in range(6)]
        results = await asyncio.gather(
            *(
                repos[i % 2].save(r.copy(state=State.DEPLOYING), [entry("release.approved")])
                for i, r in enumerate(waiting)
            ),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1, results
        assert all(isinstance(e, Refused) for e in lost), lost
        assert (await repos[1].active_for("tax-api", "production")).id == won[0].id  # type: ignore[union-attr]
        # Only the winner's audit record was written.
        assert (await verify_chain(engines[0])).checked == 1
    finally:
        for e in engines:
            await e.dispose()


async def test_failed_save_writes_no_audit_record(
    repo: SqlReleaseRepository, engine, make_release: MakeRelease
):
    stored = await repo.create(make_release(), [entry("release.requested")])
    with pytest.raises(ConcurrentUpdate):
        await repo.save(stored.copy(revision=7), [entry("release.approved")])
    async with engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(audit_events))).scalar()
    assert count == 1


async def test_audit_entries_are_stamped_with_the_release(
    repo: SqlReleaseRepository, make_release: MakeRelease
):
    stored = await repo.create(make_release(), [entry("release.requested", after="requested")])
    await repo.save(
        stored.copy(state=State.AWAITING_APPROVAL),
        [entry("release.submitted", before="requested", after="awaiting_approval")],
    )
    await repo.append_audit([entry("lock.added", service="billing", environment="staging")])
    audit = await repo.audit_for(stored.id or 0)
    assert [(e.action, e.release_id, e.release_key, e.service) for e in audit] == [
        ("release.requested", stored.id, stored.key, "tax-api"),
        ("release.submitted", stored.id, stored.key, "tax-api"),
    ]
    assert audit[0].at == NOW


async def test_set_card_keeps_the_revision(repo: SqlReleaseRepository, make_release: MakeRelease):
    stored = await repo.create(make_release(), [])
    await repo.set_card(stored.id or 0, "C0RELEASES", "1732620000.000100")
    got = await repo.get(stored.id or 0)
    assert got is not None and (got.channel, got.message_ts, got.revision) == (
        "C0RELEASES",
        "1732620000.000100",
        stored.revision,
    )
    with pytest.raises(NotFound):
        await repo.set_card(12345, "C0", "1.0")


async def test_unfinished_and_history(
    repo: SqlReleaseRepository, engine, make_release: MakeRelease
):
    done = await repo.create(make_release(state=State.SUCCEEDED), [])
    waiting = await repo.create(make_release(state=State.AWAITING_APPROVAL), [])
    staging = await repo.create(make_release(environment="staging", state=State.DEPLOYING), [])
    billing = await repo.create(make_release(service="billing", state=State.CANCELLED), [])

    assert [r.id for r in await repo.unfinished()] == [waiting.id, staging.id]
    assert [r.id for r in await repo.history(None, None, 10)] == [
        billing.id,
        staging.id,
        waiting.id,
        done.id,
    ]
    assert [r.id for r in await repo.history("tax-api", "production", 10)] == [
        waiting.id,
        done.id,
    ]
    assert [r.id for r in await repo.history("tax-api", None, 1, before_id=staging.id)] == [
        waiting.id
    ]
    async with engine.connect() as conn:
        slots = (await conn.execute(sa.select(releases.c.active_slot))).scalars().all()
    assert sorted(s for s in slots if s) == ["tax-api/staging"]


async def test_save_never_forgets_where_the_card_lives(
    repo: SqlReleaseRepository, make_release: MakeRelease
):
    stored = await repo.create(make_release(), [])
    await repo.set_card(stored.id or 0, "C0RELEASES", "1700000000.000100")
    # The engine's copy was read before the card was posted.
    await repo.save(stored.copy(reason="changed"), [])
    got = await repo.get(stored.id or 0)
    assert got is not None and got.reason == "changed"
    assert (got.channel, got.message_ts) == ("C0RELEASES", "1700000000.000100")


async def test_votes_of_several_releases_in_one_call(
    repo: SqlReleaseRepository, vote_repo: SqlVoteRepository, make_release: MakeRelease
):
    first = await repo.create(make_release(), [])
    second = await repo.create(make_release(environment="staging"), [])
    for rid, user in [(first.id, "U1"), (second.id, "U2"), (first.id, "U3")]:
        assert await vote_repo.add_vote(Vote(rid or 0, "v-new", user, True, NOW))
    found = await vote_repo.votes_many([first.id or 0, second.id or 0, 999])
    assert [v.user_id for v in found[first.id or 0]] == ["U1", "U3"]
    assert [v.user_id for v in found[second.id or 0]] == ["U2"]
    assert found[999] == []
