"""Strangers' uploads against a real ``releasebot run`` (uvicorn on a local port): refused
with 401/413 (503 or 408 when they hold the line), the process's memory bounded while they
last, nothing of their bodies in the log, and Slack's own requests still served after.

Before the request limits, 200 slow unsigned 950 KB uploads took the bot from 114 MB to
306 MB; the bound is 16 bodies of at most 640 KB being read at once (``bot.web``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.engine.states import State
from storage.db import upgrade
from tests.fixtures.processes import BotProcess, World, world_config_fixture, world_fixture  # noqa: F401

MARKER = b"FLOOD-BODY-"
UPLOADS = 200
# What the process may grow by while the flood lasts (the measured growth is printed).
RSS_BOUND_MB = 60


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: the flood is about the HTTP side, the same on either database."""
    upgrade(sqlite_url)
    return sqlite_url


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class Sampler:
    """The largest RSS of ``pid`` seen while it runs (every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_kb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kb(self.pid))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def upload(
    port: int, headers: dict[str, str], size: int, chunk: int, pause: float
) -> int | str:
    """One POST of ``size`` bytes in ``chunk``-byte pieces ``pause`` s apart; the status the
    bot answers (it may answer before the body is all sent), or why there was none."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = ["POST /slack/events HTTP/1.1", "host: 127.0.0.1", f"content-length: {size}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    body = (MARKER * (size // len(MARKER) + 1))[:size]

    async def send() -> None:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        for at in range(0, size, chunk):
            writer.write(body[at : at + chunk])
            await writer.drain()
            await asyncio.sleep(pause)

    sending = asyncio.create_task(send())
    try:
        line = await asyncio.wait_for(reader.readline(), 30)
        return int(line.split()[1]) if line else "closed"
    except (ConnectionError, TimeoutError) as exc:
        return type(exc).__name__
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


def forged(now: float) -> dict[str, str]:
    """Headers with Slack's shapes and a fresh timestamp, signed with the wrong secret."""
    return {
        "x-slack-request-timestamp": str(int(now)),
        "x-slack-signature": "v0=" + "5" * 64,
        "content-type": "application/x-www-form-urlencoded",
    }


def flood(port: int, headers: dict[str, str], size: int, chunk: int, pause: float) -> Counter:
    async def everyone() -> list[int | str]:
        return list(
            await asyncio.gather(
                *(upload(port, headers, size, chunk, pause) for _ in range(UPLOADS))
            )
        )

    return Counter(asyncio.run(everyone()))


@pytest.fixture
def bot(world: World) -> Iterator[BotProcess]:
    bot = world.spawn("flooded")
    # Warm up the paths a flood takes, so their first use is not counted as growth.
    bot.command("status")
    flood(bot.port, forged(time.time()), 20_000, 20_000, 0)
    time.sleep(1)
    yield bot


def test_slow_forged_uploads_hold_at_most_sixteen_bodies(bot: BotProcess, world: World) -> None:
    before = rss_kb(bot.pid)
    with Sampler(bot.pid) as sampler:
        # 600 KB each (under the limit, so they are read), 60 KB every 0.2 s: 2 s a body.
        answers = flood(bot.port, forged(time.time()), 600_000, 60_000, 0.2)
    growth_mb = (sampler.peak - before) / 1024
    print(f"slow forged uploads: {dict(answers)}; RSS {before / 1024:.0f} MB, +{growth_mb:.1f} MB")
    assert set(answers) <= {401, 503, 408}, answers
    assert answers[401] >= 16  # those that had a slot were read to the end and refused
    assert growth_mb < RSS_BOUND_MB
    _still_serves(bot, world)


def test_unsigned_and_oversized_uploads_are_refused_unread(bot: BotProcess, world: World) -> None:
    before = rss_kb(bot.pid)
    with Sampler(bot.pid) as sampler:
        unsigned = flood(bot.port, {"content-type": "text/plain"}, 950_000, 95_000, 0.2)
        oversized = flood(bot.port, forged(time.time()), 950_000, 95_000, 0.2)
    growth_mb = (sampler.peak - before) / 1024
    print(f"unsigned: {dict(unsigned)}; oversized: {dict(oversized)}; +{growth_mb:.1f} MB")
    assert unsigned == Counter({401: UPLOADS})
    assert oversized == Counter({413: UPLOADS})
    assert growth_mb < RSS_BOUND_MB
    _still_serves(bot, world)


def _still_serves(bot: BotProcess, world: World) -> None:
    bot.command("deploy tax-api v1.4.2 to staging")
    assert world.wait_state(1, State.SUCCEEDED, timeout=60).state is State.SUCCEEDED
    log = bot.log_text()
    assert MARKER.decode() not in log
    assert "Invalid request signature" not in log or "request body not logged" in log
