"""``releasebot run`` with one measurement added, for ``bench/scheduler_scale.py``: every timer
the scheduler claims is written to ``$BENCH_TIMER_LOG`` (one JSON line: kind, id, release,
due, claimed and started as UTC timestamps), so the benchmark can tell how late each one
fired. Nothing else changes: the bot's own ``run`` command serves as usual.

    BENCH_TIMER_LOG=/tmp/timers.jsonl .venv/bin/python bench/timed_run.py run
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import cli
from bot.engine.driving import Driving
from storage.timers import SqlTimerRepository

LOG = open(os.environ["BENCH_TIMER_LOG"], "a", buffering=1)  # noqa: SIM115 - lives with the process
_claimed: dict[int, float] = {}

_claim_due = SqlTimerRepository.claim_due
_run_timer = Driving.run_timer


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
Driving.run_timer = run_timer  # type: ignore[method-assign]

if __name__ == "__main__":
    cli.main()
