"""``releasebot run`` with two measurements added, for ``bench/scheduler_scale.py``:

* every timer the scheduler claims is written to ``$BENCH_TIMER_LOG`` (one JSON line: kind,
  id, release, due, claimed and started as UTC timestamps), so the benchmark can tell how
  late each one fired;
* with ``$BENCH_TX_LOG`` set, every database transaction is counted by the storage method
  that made it and the engine method that asked, written there as JSON when the process ends.

Nothing else changes: the bot's own ``run`` command serves as usual.

    BENCH_TIMER_LOG=/tmp/timers.jsonl .venv/bin/python bench/timed_run.py run
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import storage.db
from bot import cli
from bot.engine.service import ReleaseService
from storage.timers import SqlTimerRepository

LOG = open(os.environ["BENCH_TIMER_LOG"], "a", buffering=1)  # noqa: SIM115 - lives with the process
_claimed: dict[int, float] = {}

_claim_due = SqlTimerRepository.claim_due
_run_timer = ReleaseService.run_timer


async def claim_due(self: Any, now: datetime, *args: Any, **kwargs: Any) -> Any:
    claimed = await _claim_due(self, now, *args, **kwargs)
    at = datetime.now(UTC).timestamp()
    for timer in claimed:
        _claimed[timer.id] = at
    return claimed


async def run_timer(self: Any, timer: Any) -> None:
    claimed_at = _claimed.pop(timer.id, None)
    if claimed_at is not None:
        LOG.write(
            json.dumps(
                {
                    "kind": timer.kind,
                    "id": timer.id,
                    "release": timer.release_id,
                    "due": timer.due_at.timestamp(),
                    "claimed": claimed_at,
                    "started": datetime.now(UTC).timestamp(),
                }
            )
            + "\n"
        )
    await _run_timer(self, timer)


SqlTimerRepository.claim_due = claim_due  # type: ignore[method-assign]
ReleaseService.run_timer = run_timer  # type: ignore[method-assign]

_transactions: collections.Counter[str] = collections.Counter()
_connected = storage.db._connected


def _caller() -> str:
    """``storage method <- its caller``, skipping context-manager plumbing."""
    names: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(names) < 2:
        code = frame.f_code
        if "contextlib" not in code.co_filename and not code.co_filename.endswith("db.py"):
            names.append(f"{Path(code.co_filename).stem}.{code.co_name}")
        frame = frame.f_back
    return " <- ".join(names)


def counted_connection(engine: Any) -> Any:
    _transactions[_caller()] += 1
    return _connected(engine)


if os.environ.get("BENCH_TX_LOG"):
    storage.db._connected = counted_connection  # type: ignore[assignment]
    atexit.register(
        lambda: Path(os.environ["BENCH_TX_LOG"]).write_text(json.dumps(_transactions.most_common()))
    )

if __name__ == "__main__":
    cli.main()
