"""One GitHub request, and the retry policy around it.

Retried until the call's deadline (not a number of attempts): 5xx, timeouts, dropped
connections, and GitHub's rate limits as its documentation describes them
(docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api):

- ``retry-after`` on a 403 or 429 (a secondary limit): wait that many seconds;
- ``x-ratelimit-remaining: 0`` on a 403 or 429 (the primary limit): wait until
  ``x-ratelimit-reset`` (Unix seconds);
- a 403 or 429 saying "secondary rate limit" with neither header: wait at least a minute.

A wait beyond ``max_retry_after`` or past the deadline ends the call at once with
``SourceUnavailable`` (``rate_limited``, and until when). A success that leaves
``x-ratelimit-remaining`` at 0 makes the next call wait for the reset first instead of being
refused. Any other 4xx is ``SourceRejected``. Logs name the method, the path template and the
status — never the token, headers or bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bot.engine.errors import SourceRejected, SourceUnavailable
from bot.engine.source import SourceBusyListener

log = logging.getLogger("releasebot.github")

SECONDARY_WAIT = 60.0  # GitHub: "wait for at least one minute before retrying"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one attempt got: a response to hand back, or a reason to try again after
    ``wait`` seconds (None: the usual backoff)."""

    response: httpx.Response | None
    problem: str = ""
    wait: float | None = None
    rate_limited: bool = False

    @property
    def final(self) -> bool:
        return self.response is not None and not self.problem


def judge(response: httpx.Response, now: float) -> Verdict:
    """Whether ``response`` ends the call or is worth repeating, and after how long; ``now``
    is the wall clock in Unix seconds (``x-ratelimit-reset`` is one)."""
    status = response.status_code
    if status >= 500:
        return Verdict(response, f"answered {status}")
    if status not in (403, 429):
        return Verdict(response)
    headers = response.headers
    retry_after = retry_after_seconds(headers.get("retry-after"))
    if retry_after is not None:
        return Verdict(response, f"rate limited ({status})", retry_after, rate_limited=True)
    if headers.get("x-ratelimit-remaining") == "0":
        reset = _number(headers.get("x-ratelimit-reset"))
        wait = max(0.0, reset - now) + 1.0 if reset is not None else SECONDARY_WAIT
        return Verdict(response, f"rate limited ({status})", wait, rate_limited=True)
    if status == 429 or "secondary rate limit" in _message(response).lower():
        return Verdict(response, f"rate limited ({status})", SECONDARY_WAIT, rate_limited=True)
    return Verdict(response)  # a 403 that is not a limit: no permission


def retry_after_seconds(value: str | None) -> float | None:
    """``retry-after`` as seconds (GitHub sends a number of seconds)."""
    seconds = _number(value.strip()) if value else None
    return max(0.0, seconds) if seconds is not None else None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


@dataclass(slots=True)
class Call:
    what: str
    deadline: float
    on_busy: SourceBusyListener | None
    problems: list[str] = field(default_factory=list)
    told: bool = False
    rate_limited: bool = False
    until: float | None = None  # wall-clock Unix seconds the last rate limit lifts


class Retrier:
    """Sends GET requests on ``http`` with the retry policy. ``sleep``, ``jitter``,
    ``monotonic`` and ``wall`` are injectable so tests run on a fake clock."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        backoff_base: float,
        backoff_cap: float,
        max_retry_after: float,
        sleep: Callable[[float], Awaitable[Any]],
        jitter: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.http = http
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._jitter = jitter
        self.monotonic = monotonic
        self.wall = wall
        self.exhausted_until: float | None = None  # the primary limit is spent until then

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + ceiling / 2 * self._jitter()

    async def get(
        self,
        path: str,
        template: str,
        what: str,
        budget: float,
        on_busy: SourceBusyListener | None = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """The first final response to ``GET path``; ``SourceUnavailable`` when none came
        before ``budget`` seconds passed."""
        call = Call(what, self.monotonic() + budget, on_busy)
        try:
            await self._respect_spent_limit(call)
            while True:
                verdict = await self._attempt(path, template, len(call.problems) + 1, params)
                if verdict.final and verdict.response is not None:
                    self._note_remaining(verdict.response)
                    return verdict.response
                call.problems.append(verdict.problem)
                call.rate_limited = verdict.rate_limited
                wait = self.backoff(len(call.problems))
                if verdict.wait is not None:  # a rate limit: exactly as long as GitHub says
                    wait = verdict.wait
                    call.until = self._wall_seconds() + verdict.wait
                await self._wait(call, wait)
        finally:
            if call.told and call.on_busy is not None:
                await self._tell(call, None)

    async def _respect_spent_limit(self, call: Call) -> None:
        """After a success left no requests in the hour, wait for the reset before asking
        (within the deadline) rather than be refused."""
        until = self.exhausted_until
        if until is None:
            return
        wait = until - self._wall_seconds()
        if wait <= 0:
            self.exhausted_until = None
            return
        call.problems.append("rate limit spent")
        call.rate_limited, call.until = True, until
        await self._wait(call, wait)
        self.exhausted_until = None

    async def _wait(self, call: Call, seconds: float) -> None:
        if call.rate_limited and seconds > self.max_retry_after:
            raise self._give_up(call, f"GitHub asked to wait {seconds:.0f} s")
        if seconds > call.deadline - self.monotonic():
            raise self._give_up(call, "its retry budget is spent")
        if not call.told and call.on_busy is not None:
            call.told = True
            remaining = max(0.0, call.deadline - self.monotonic())
            await self._tell(call, self.wall() + timedelta(seconds=remaining))
        await self._sleep(seconds)

    async def _tell(self, call: Call, until: datetime | None) -> None:
        if call.on_busy is None:
            return
        try:
            await call.on_busy(until)
        except Exception:  # telling people must never break a GitHub call
            log.exception("telling of a GitHub wait failed")

    def _give_up(self, call: Call, note: str) -> SourceUnavailable:
        tried = len(call.problems)
        last = call.problems[-1] if call.problems else "no answer"
        message = f"GitHub did not answer {call.what} ({tried} tries, last: {last}): {note}"
        return SourceUnavailable(message, rate_limited=call.rate_limited, until=call.until)

    def _wall_seconds(self) -> float:
        return self.wall().timestamp()

    def _note_remaining(self, response: httpx.Response) -> None:
        if response.headers.get("x-ratelimit-remaining") == "0":
            self.exhausted_until = _number(response.headers.get("x-ratelimit-reset"))

    async def _attempt(
        self, path: str, template: str, number: int, params: dict[str, Any] | None
    ) -> Verdict:
        extra: dict[str, Any] = {"http_method": "GET", "path_template": template, "attempt": number}
        started = time.monotonic()
        try:
            response = await self.http.get(path, params=params)
        except httpx.TimeoutException as exc:
            log.warning("github GET %s timed out (%s)", template, type(exc).__name__, extra=extra)
            return Verdict(None, "timed out")
        except httpx.TransportError as exc:
            log.warning("github GET %s failed (%s)", template, type(exc).__name__, extra=extra)
            return Verdict(None, "could not be reached")
        extra["elapsed_ms"] = round((time.monotonic() - started) * 1000)
        extra["status"] = response.status_code
        verdict = judge(response, self._wall_seconds())
        level = logging.DEBUG if response.status_code < 400 else logging.WARNING
        log.log(level, "github GET %s -> %s", template, response.status_code, extra=extra)
        return verdict


def rejected(response: httpx.Response, what: str) -> SourceRejected:
    """A ``SourceRejected`` in words: the status and GitHub's own message."""
    message = _message(response)[:200]
    said = f": {message}" if message else ""
    hint = {
        401: " (the token is wrong or expired)",
        403: " (the token may not read this repository)",
        404: " (no such repository or commit, or the token may not see it)",
    }.get(response.status_code, "")
    return SourceRejected(
        f"GitHub refused {what} ({response.status_code}{said}){hint}", response.status_code
    )
