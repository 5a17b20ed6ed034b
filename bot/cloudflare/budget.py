"""The process's Cloudflare call budget: one token bucket shared by every call, whatever made it.

Cloudflare allows 1,200 API requests per five minutes per user, counted across the dashboard,
wrangler and every token of that user, and blocks *all* calls for five minutes once it is
exceeded. The bot keeps well under that on its own: ``rate`` calls a second on average, at
most ``burst`` at once. When calls queue, a rollback goes first, then release steps, then
reads (commands, drift checks, digests); reads also leave the last ``reserve`` tokens to
releases, so a burst of questions never makes a step wait for a token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Any, Protocol


class Priority(IntEnum):
    """Lower goes first."""

    ROLLBACK = 0
    STEP = 1
    READ = 2


class BudgetMetrics(Protocol):
    """What hears how long each call waited for a token (``bot.metrics.Metrics``)."""

    def observe_budget_wait(self, priority: str, seconds: float) -> None: ...


class BudgetExhausted(Exception):
    """No token could be had before the call's deadline."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"no Cloudflare call could be made within {waited:.0f} s")
        self.waited = waited


class CallBudget:
    """A token bucket with priorities. ``monotonic`` and ``sleep`` are injectable so tests can
    run it on a fake clock."""

    def __init__(
        self,
        rate: float,
        burst: int,
        reserve: int = 0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        metrics: BudgetMetrics | None = None,
    ) -> None:
        if rate <= 0 or burst < 1 or not 0 <= reserve < burst:
            raise ValueError("need rate > 0, burst >= 1 and 0 <= reserve < burst")
        self.rate = rate
        self.burst = burst
        self.reserve = reserve
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = monotonic()
        self._waiting = {p: 0 for p in Priority}
        self._metrics = metrics

    def _observe(self, priority: Priority, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_budget_wait(priority.name.lower(), seconds)

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def _floor(self, priority: Priority) -> float:
        """Tokens that must remain after a call of ``priority``."""
        return float(self.reserve) if priority is Priority.READ else 0.0

    def _may_take(self, priority: Priority) -> bool:
        if any(self._waiting[p] for p in Priority if p < priority):
            return False  # someone more urgent is waiting
        return self._tokens - 1 >= self._floor(priority) - 1e-9

    def try_take(self, priority: Priority) -> bool:
        """Take a token now if one is free for ``priority``."""
        self._refill()
        if self._may_take(priority):
            self._tokens -= 1
            return True
        return False

    async def take(self, priority: Priority, deadline: float) -> None:
        """Wait for a token (by ``deadline``, on the ``monotonic`` clock); ``BudgetExhausted``
        when none comes in time."""
        if self.try_take(priority):
            self._observe(priority, 0.0)
            return
        started = self._monotonic()
        self._waiting[priority] += 1
        try:
            while True:
                self._refill()
                if self._may_take(priority):
                    self._tokens -= 1
                    self._observe(priority, self._monotonic() - started)
                    return
                now = self._monotonic()
                if now >= deadline:
                    raise BudgetExhausted(now - started)
                short = self._floor(priority) + 1 - self._tokens
                wait = max(short / self.rate, 0.01)
                await self._sleep(min(wait, deadline - now))
        finally:
            self._waiting[priority] -= 1
