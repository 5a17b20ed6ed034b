"""The ledger of Slack trigger_ids, on SQLite and PostgreSQL: a trigger is new once per
window, whoever asks and however many ask at once; old rows are deleted."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.tables import slack_triggers
from storage.triggers import SqlTriggerLedger
from tests.fixtures.db import NOW

WINDOW = timedelta(minutes=5)


async def test_a_trigger_is_new_once_within_its_window(engine: AsyncEngine) -> None:
    ledger = SqlTriggerLedger(engine)
    assert await ledger.first_sighting("t-1", "command", "U0CAROL", NOW, WINDOW)
    assert not await ledger.first_sighting("t-1", "command", "U0CAROL", NOW, WINDOW)
    later = NOW + WINDOW - timedelta(seconds=1)
    assert not await ledger.first_sighting("t-1", "block_actions", "U0MALLORY", later, WINDOW)
    assert await ledger.first_sighting("t-2", "command", "U0CAROL", NOW, WINDOW)
    # Past the window the row is stale: the trigger counts as new again (Slack's signature
    # check refuses a request that old anyway) and the row is taken over.
    assert await ledger.first_sighting("t-1", "command", "U0BOB", NOW + WINDOW, WINDOW)
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    sa.select(slack_triggers).where(slack_triggers.c.trigger_id == "t-1")
                )
            )
            .mappings()
            .one()
        )
    assert (row["user_id"], row["seen_at"]) == ("U0BOB", NOW + WINDOW)


async def test_replicas_asking_at_once_see_it_new_exactly_once(
    engine: AsyncEngine, db_url: str
) -> None:
    from storage.db import create_engine

    other = create_engine(db_url)  # a second replica: its own engine and connections
    try:
        ledgers = [SqlTriggerLedger(engine), SqlTriggerLedger(other)] * 10
        answers = await asyncio.gather(
            *(
                ledger.first_sighting("t-race", "block_actions", "U0ALICE", NOW, WINDOW)
                for ledger in ledgers
            )
        )
    finally:
        await other.dispose()
    assert sorted(answers) == [False] * 19 + [True]


async def test_the_note_about_a_replay_is_given_once_per_sighting(engine: AsyncEngine) -> None:
    ledger = SqlTriggerLedger(engine)
    await ledger.first_sighting("t-1", "block_actions", "U0ALICE", NOW, WINDOW)
    notes = await asyncio.gather(*(ledger.note_once("t-1") for _ in range(5)))
    assert sorted(notes) == [False] * 4 + [True]
    assert not await ledger.note_once("never-seen")
    # A new sighting after the window may be noted again.
    await ledger.first_sighting("t-1", "block_actions", "U0ALICE", NOW + WINDOW, WINDOW)
    assert await ledger.note_once("t-1")


async def test_old_triggers_are_deleted(engine: AsyncEngine) -> None:
    ledger = SqlTriggerLedger(engine)
    for minutes in range(10):
        await ledger.first_sighting(
            f"t-{minutes}", "command", None, NOW + timedelta(minutes=minutes), WINDOW
        )
    assert await ledger.expire(NOW + timedelta(minutes=5)) == 5
    async with engine.connect() as conn:
        left = (await conn.execute(sa.select(slack_triggers.c.trigger_id))).scalars().all()
    assert sorted(left) == [f"t-{m}" for m in range(5, 10)]
    assert await ledger.expire(NOW + timedelta(minutes=5)) == 0
