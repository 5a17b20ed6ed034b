"""The Slack outbox under load: messages stored at the same moment share a transaction, yet
each caller gets back its own row, and a failed write reaches every caller it held."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.outbox import GroupCommit, SqlOutbox

pytest_plugins = ["tests.fixtures.db"]

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOLD = timedelta(seconds=30)


async def test_concurrent_messages_are_stored_together_each_caller_gets_its_own(
    engine: AsyncEngine,
) -> None:
    outbox = SqlOutbox(engine)
    batches: list[int] = []
    insert = outbox._insert

    async def counted(rows: list[dict[str, object]]) -> list[object]:
        batches.append(len(rows))
        return await insert(rows)  # type: ignore[arg-type]

    outbox._adds = GroupCommit(counted)  # type: ignore[assignment]
    stored = await asyncio.gather(
        *(outbox.add("audit", "C1", {"n": n}, NOW, HOLD) for n in range(30))
    )
    assert [m.payload for m in stored] == [{"n": n} for n in range(30)]
    assert len({m.id for m in stored}) == 30
    assert sum(batches) == 30 and len(batches) < 30

    await asyncio.gather(*(outbox.sent(m.id, NOW + timedelta(seconds=m.id)) for m in stored))
    assert await outbox.count_unsent() == 0
    alone = await outbox.add("audit", "C1", {"n": "late"}, NOW, HOLD)
    assert [m.id for m in await outbox.unsent()] == [alone.id]


async def test_a_failed_batch_fails_every_caller_in_it_and_the_next_one_still_runs() -> None:
    calls: list[list[int]] = []
    in_flight = asyncio.Event()
    go_on = asyncio.Event()

    async def write(items: list[int]) -> list[int]:
        calls.append(items)
        in_flight.set()
        await go_on.wait()
        if 13 in items:
            raise RuntimeError("database unavailable")
        return [item * 2 for item in items]

    group: GroupCommit[int, int] = GroupCommit(write)
    first = asyncio.ensure_future(group.submit(1))
    await in_flight.wait()  # the first write is in flight: the next two wait for it, together
    later = asyncio.gather(group.submit(13), group.submit(14), return_exceptions=True)
    await asyncio.sleep(0)
    go_on.set()
    assert await first == 2
    assert [str(r) for r in await later] == ["database unavailable"] * 2
    assert calls == [[1], [13, 14]]
    assert await group.submit(5) == 10
