"""Per-person limits on read commands: a burst of questions from one person is answered
politely instead of spending the Cloudflare calls releases need."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

USERS_KNOWN = 10_000  # people whose recent commands are remembered; the oldest go first


class PersonLimit:
    """At most ``commands`` per person in any ``per`` seconds (a sliding window)."""

    def __init__(
        self, commands: int, per: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if commands < 1 or per <= 0:
            raise ValueError("need commands >= 1 and per > 0")
        self.commands = commands
        self.per = per
        self._monotonic = monotonic
        self._seen: dict[str, deque[float]] = {}

    def admit(self, user_id: str) -> float | None:
        """None when ``user_id`` may run one more now (and it is counted); else the seconds
        until they may."""
        now = self._monotonic()
        seen = self._seen.pop(user_id, None) or deque()
        while seen and now - seen[0] >= self.per:
            seen.popleft()
        self._seen[user_id] = seen  # most recent last, so the oldest are forgotten first
        if len(self._seen) > USERS_KNOWN:
            self._seen.pop(next(iter(self._seen)))
        if len(seen) >= self.commands:
            return seen[0] + self.per - now
        seen.append(now)
        return None


def polite_answer(command: str, wait: float) -> str:
    """What a person hears when they asked too often (plain text, nothing of theirs in it)."""
    seconds = max(1, math.ceil(wait))
    unit = "second" if seconds == 1 else "seconds"
    return (
        f"You have asked a lot in a short time, so this one was not run. Please try "
        f"`{command}` again in {seconds} {unit}; releases in flight are not affected."
    )
