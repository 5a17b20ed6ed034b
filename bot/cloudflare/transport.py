"""One HTTP attempt, and the retry policy around it.

Retried: 429 (Cloudflare did not process the request), 5xx, timeouts and transport errors.
Waits grow exponentially with jitter and are never shorter than ``Retry-After``. Logs name
the method, the path template, the status, the attempt and the elapsed time — never headers,
URLs with values filled in beyond the template, or bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from bot.cloudflare.failures import gave_up
from bot.engine.errors import EdgeUnavailable


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one request got.

    ``final`` — a response to hand back (success or a refusal not worth repeating).
    ``ambiguous`` — Cloudflare may have acted although the answer says otherwise (5xx,
    timeout, dropped connection); a 429 is not ambiguous.
    """

    response: httpx.Response | None
    problem: str = ""
    retry_after: float | None = None
    ambiguous: bool = False

    @property
    def final(self) -> bool:
        return self.response is not None and not self.problem


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date in the future."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retryable(status: int) -> bool:
    return status == 429 or status >= 500


# Told of every attempt: (method, path template, status or "timeout"/"unreachable", seconds).
Observer = Callable[[str, str, str, float], None]
# Told of every wait between attempts: (reason "backoff" or "retry_after", seconds).
WaitObserver = Callable[[str, float], None]


class CloudflareMetrics(Protocol):
    """What hears of every attempt and every wait (``bot.metrics.Metrics``)."""

    def observe_cloudflare(
        self, method: str, endpoint: str, status: str, seconds: float
    ) -> None: ...

    def observe_retry_wait(self, reason: str, seconds: float) -> None: ...

    def observe_retry_refused(self) -> None: ...


class Retrier:
    """Sends requests on ``http`` with the retry policy; ``attempt`` and ``pause`` are public so
    the deployment call can interleave its own check between attempts. ``observer``, when set
    (see ``bot.metrics``), hears of every attempt."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        log: logging.Logger,
        max_attempts: int,
        backoff_base: float,
        backoff_cap: float,
        max_retry_after: float,
        sleep: Callable[[float], Awaitable[Any]],
        jitter: Callable[[], float],
        metrics: CloudflareMetrics | None = None,
    ) -> None:
        self.http = http
        self.observer: Observer | None = metrics.observe_cloudflare if metrics else None
        self.wait_observer: WaitObserver | None = metrics.observe_retry_wait if metrics else None
        # Told when a Retry-After beyond ``max_retry_after`` makes a call give up.
        self.refusal_observer: Callable[[], None] | None = (
            metrics.observe_retry_refused if metrics else None
        )
        self.log = log
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._jitter = jitter

    def backoff(self, attempt: int) -> float:
        """Half fixed, half random ("equal jitter"): spreads retries without ever going to 0."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + ceiling / 2 * self._jitter()

    async def pause(self, attempt: int, retry_after: float | None) -> None:
        delay = self.backoff(attempt)
        reason = "backoff"
        if retry_after is not None and retry_after > delay:
            delay, reason = retry_after, "retry_after"
        if self.wait_observer is not None:
            self.wait_observer(reason, delay)
        await self._sleep(delay)

    def waits_too_long(self, outcome: Attempt) -> bool:
        return outcome.retry_after is not None and outcome.retry_after > self.max_retry_after

    def refuse_long_wait(self, outcome: Attempt, what: str) -> None:
        """A ``Retry-After`` beyond ``max_retry_after`` (Cloudflare's global limit blocks for
        minutes) is not worth holding a release for: give up now, saying how long to wait."""
        if self.waits_too_long(outcome):
            if self.refusal_observer is not None:
                self.refusal_observer()
            raise EdgeUnavailable(
                f"{gave_up([outcome.problem], what)}: Cloudflare asked to wait "
                f"{outcome.retry_after:.0f} s before trying again"
            )

    async def attempt(
        self,
        method: str,
        path: str,
        template: str,
        number: int,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Attempt:
        started = time.monotonic()
        extra: dict[str, Any] = {
            "http_method": method,
            "path_template": template,
            "attempt": number,
        }
        try:
            response = await self.http.request(method, path, params=params, json=json)
        except httpx.TimeoutException as exc:
            extra["elapsed_ms"] = round((time.monotonic() - started) * 1000)
            self._observe(method, template, "timeout", started)
            self.log.warning(
                "cloudflare %s %s timed out (%s)", method, template, type(exc).__name__, extra=extra
            )
            return Attempt(None, "timed out", ambiguous=True)
        except httpx.TransportError as exc:
            extra["elapsed_ms"] = round((time.monotonic() - started) * 1000)
            self._observe(method, template, "unreachable", started)
            self.log.warning(
                "cloudflare %s %s failed (%s)", method, template, type(exc).__name__, extra=extra
            )
            # a refused connection never reached Cloudflare; anything later might have
            ambiguous = not isinstance(exc, httpx.ConnectError)
            return Attempt(None, "could not be reached", ambiguous=ambiguous)
        extra["elapsed_ms"] = round((time.monotonic() - started) * 1000)
        extra["status"] = response.status_code
        self._observe(method, template, str(response.status_code), started)
        if not retryable(response.status_code):
            level = logging.DEBUG if response.status_code < 400 else logging.WARNING
            self.log.log(
                level,
                "cloudflare %s %s -> %s",
                method,
                template,
                response.status_code,
                extra=extra,
            )
            return Attempt(response)
        wait = retry_after_seconds(response.headers.get("retry-after"))
        extra["retry_after"] = wait
        self.log.warning(
            "cloudflare %s %s -> %s", method, template, response.status_code, extra=extra
        )
        return Attempt(
            response,
            problem=f"answered {response.status_code}",
            retry_after=wait,
            ambiguous=response.status_code != 429,
        )

    def _observe(self, method: str, template: str, status: str, started: float) -> None:
        if self.observer is not None:
            try:
                self.observer(method, template, status, time.monotonic() - started)
            except Exception:  # counting must never break a Cloudflare call
                self.log.exception("recording a Cloudflare call failed")

    async def send_counted(
        self,
        method: str,
        path: str,
        template: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> tuple[httpx.Response, int]:
        """The first final response and how many attempts it took; ``EdgeUnavailable`` when
        every attempt failed. Only for requests that are safe to repeat."""
        problems: list[str] = []
        for number in range(1, self.max_attempts + 1):
            outcome = await self.attempt(method, path, template, number, params=params, json=json)
            if outcome.final and outcome.response is not None:
                return outcome.response, number
            problems.append(outcome.problem)
            self.refuse_long_wait(outcome, what)
            if number < self.max_attempts:
                await self.pause(number, outcome.retry_after)
        raise gave_up(problems, what)

    async def send(
        self,
        method: str,
        path: str,
        template: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        response, _ = await self.send_counted(
            method, path, template, what, params=params, json=json
        )
        return response
