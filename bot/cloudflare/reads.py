"""Reads of the same thing share one request and its answer for a moment.

Questions from people (``/release versions``, ``status``, the App Home) and the drift watch
ask Cloudflare the same few things over and over. Per script and kind of read, at most one
request is in flight — everyone asking meanwhile gets its answer — and the answer is kept for
``ttl`` seconds. A release's own reads never use a kept answer (they must see what is live
now), but what they read refreshes it; a deployment made by the bot drops what is kept for
that script.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ReadCache(Generic[T]):
    def __init__(self, ttl: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._monotonic = monotonic
        self._kept: dict[str, tuple[float, T]] = {}
        self._flying: dict[str, asyncio.Future[T]] = {}
        self._generation: dict[str, int] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T:
        """The kept answer for ``key`` if fresh, else the one in flight, else a new one."""
        kept = self._kept.get(key)
        if kept is not None and self._monotonic() - kept[0] < self.ttl:
            return kept[1]
        flying = self._flying.get(key)
        if flying is not None:
            return await asyncio.shield(flying)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._flying[key] = future
        generation = self._generation.get(key, 0)
        try:
            value = await fetch()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so nobody waiting is not an error
            raise
        else:
            future.set_result(value)
            if self._generation.get(key, 0) == generation:
                self._kept[key] = (self._monotonic(), value)
            return value
        finally:
            if self._flying.get(key) is future:  # not a newer one started after ``forget``
                del self._flying[key]

    def put(self, key: str, value: T) -> None:
        """A fresh answer read some other way."""
        self._kept[key] = (self._monotonic(), value)

    def forget(self, key: str) -> None:
        """What is kept (or in flight) for ``key`` is out of date."""
        self._kept.pop(key, None)
        self._flying.pop(key, None)
        self._generation[key] = self._generation.get(key, 0) + 1
