"""One HTTP attempt, and the retry policy around it.

Retried: 429 (Cloudflare did not process the request), 5xx, timeouts and transport errors —
until the call's deadline, not a number of attempts: each call has a budget in time (its
``CallPlan``), 120 s for a release's steps by default and less for reads. Waits grow
exponentially with jitter and are never shorter than ``Retry-After``; a ``Retry-After``
beyond ``max_retry_after`` or past the deadline ends the call at once. Every attempt first
takes a token from the process's :class:`~bot.cloudflare.budget.CallBudget`, when there is one.
Logs name the method, the path template, the status, the attempt and the elapsed time —
never headers, URLs with values filled in beyond the template, or bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from bot.cloudflare.budget import BudgetExhausted, CallBudget, Priority
from bot.cloudflare.failures import gave_up
from bot.engine.errors import EdgeUnavailable

# Told, before the first wait of a call, until when the call keeps retrying; and None when
# a call it was told about is over.
WaitListener = Callable[[datetime | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryBudgets:
    """Seconds each kind of call may keep retrying (``cloudflare.retry`` in the config)."""

    steps: float = 120.0  # deployments, rollbacks, D1 restores and the reads a step makes
    reads: float = 20.0  # commands, drift checks, digests


@dataclass(frozen=True, slots=True)
class CallPlan:
    """How one Cloudflare call is made: who goes first, how long it may keep retrying, and
    who hears that it waits."""

    priority: Priority
    budget: float  # seconds from the first attempt to the last moment a retry may start
    on_wait: WaitListener | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one request got.

    ``final`` — a response to hand back (success or a refusal not worth repeating).
    ``ambiguous`` — Cloudflare may have acted although the answer says otherwise (5xx,
    timeout, dropped connection); a 429 is not ambiguous. ``late`` — no answer came at all
    (a timeout, a connection dropped after sending): the request may still be acted on later.
    """

    response: httpx.Response | None
    problem: str = ""
    retry_after: float | None = None
    ambiguous: bool = False
    late: bool = False

    @property
    def rate_limited(self) -> bool:
        return self.response is not None and self.response.status_code == 429

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


@dataclass(slots=True)
class Call:
    """One logical call under way: its deadline and what each failed attempt met."""

    what: str
    plan: CallPlan
    started: float
    deadline: float
    problems: list[str] = field(default_factory=list)
    told: bool = False  # the plan's listener heard of a wait

    @property
    def attempts(self) -> int:
        return len(self.problems)


class Retrier:
    """Sends requests on ``http`` with the retry policy; ``attempt`` and ``retry_wait`` are
    public so the deployment call can interleave its own checks between attempts.

    ``monotonic`` (deadlines, the call budget) and ``wall`` (the time a person is told) are
    injectable, like ``sleep``, so tests can run on a fake clock. ``max_attempts``, when set,
    caps the attempts of a call as well as its deadline."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        log: logging.Logger,
        backoff_base: float,
        backoff_cap: float,
        max_retry_after: float,
        sleep: Callable[[float], Awaitable[Any]],
        jitter: Callable[[], float],
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        budget: CallBudget | None = None,
        max_attempts: int | None = None,
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
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.max_attempts = max_attempts
        self.budget = budget
        self._sleep = sleep
        self._jitter = jitter
        self.monotonic = monotonic
        self.wall = wall

    def begin(self, what: str, plan: CallPlan) -> Call:
        now = self.monotonic()
        return Call(what, plan, now, now + plan.budget)

    def remaining(self, call: Call) -> float:
        return call.deadline - self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)

    def backoff(self, attempt: int) -> float:
        """Half fixed, half random ("equal jitter"): spreads retries without ever going to 0."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + ceiling / 2 * self._jitter()

    def give_up(self, call: Call, note: str = "") -> EdgeUnavailable:
        spent = max(0.0, self.monotonic() - call.started)
        error = gave_up(call.problems, call.what, within=spent)
        if note:
            return EdgeUnavailable(f"{error}: {note}", rate_limited=error.rate_limited)
        return error

    def waits_too_long(self, outcome: Attempt) -> bool:
        return outcome.retry_after is not None and outcome.retry_after > self.max_retry_after

    def refuse_long_wait(self, call: Call, outcome: Attempt) -> None:
        """A ``Retry-After`` beyond ``max_retry_after`` (Cloudflare's global limit blocks for
        five minutes) is not worth holding a release for: give up now, saying how long."""
        if self.waits_too_long(outcome):
            if self.refusal_observer is not None:
                self.refusal_observer()
            raise self.give_up(
                call, f"Cloudflare asked to wait {outcome.retry_after:.0f} s before trying again"
            )

    async def retry_wait(self, call: Call, outcome: Attempt, waited: float = 0.0) -> None:
        """Wait before the next attempt of ``call``, after ``outcome`` (already recorded) and
        ``waited`` seconds spent since (looking whether it took effect); ``EdgeUnavailable``
        when no further attempt fits before the deadline."""
        self.refuse_long_wait(call, outcome)
        if self.max_attempts is not None and call.attempts >= self.max_attempts:
            raise self.give_up(call)
        delay, reason = self.backoff(call.attempts), "backoff"
        if outcome.retry_after is not None and outcome.retry_after > delay:
            delay, reason = outcome.retry_after, "retry_after"
        delay = max(0.0, delay - waited)
        if delay == 0:
            return
        if delay > self.remaining(call):
            if reason == "retry_after" and self.refusal_observer is not None:
                self.refusal_observer()
            raise self.give_up(call, f"its retry budget of {call.plan.budget:.0f} s is spent")
        await self.tell(call)
        if self.wait_observer is not None:
            self.wait_observer(reason, delay)
        await self._sleep(delay)

    async def tell(self, call: Call) -> None:
        """Tell the plan's listener, once, until when the call keeps trying."""
        if call.told or call.plan.on_wait is None:
            return
        call.told = True
        until = self.wall() + timedelta(seconds=max(0.0, self.remaining(call)))
        try:
            await call.plan.on_wait(until)
        except Exception:  # telling people must never break a Cloudflare call
            self.log.exception("telling of a Cloudflare wait failed")

    async def over(self, call: Call) -> None:
        """Tell the plan's listener that a call it heard was waiting is over."""
        if not call.told or call.plan.on_wait is None:
            return
        try:
            await call.plan.on_wait(None)
        except Exception:  # telling people must never break a Cloudflare call
            self.log.exception("telling of a Cloudflare wait failed")

    async def attempt(
        self,
        method: str,
        path: str,
        template: str,
        call: Call,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Attempt:
        """One request, after a token from the call budget; a failed attempt's problem is
        recorded on ``call``."""
        if self.budget is not None:
            try:
                await self.budget.take(call.plan.priority, call.deadline)
            except BudgetExhausted as exc:
                raise self.give_up(
                    call, f"the bot's own Cloudflare call budget had no room ({exc})"
                ) from None
        outcome = await self._send(method, path, template, call.attempts + 1, params, json)
        if not outcome.final:
            call.problems.append(outcome.problem)
        return outcome

    async def _send(
        self,
        method: str,
        path: str,
        template: str,
        number: int,
        params: dict[str, Any] | None,
        json: Any,
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
            return Attempt(None, "timed out", ambiguous=True, late=True)
        except httpx.TransportError as exc:
            extra["elapsed_ms"] = round((time.monotonic() - started) * 1000)
            self._observe(method, template, "unreachable", started)
            self.log.warning(
                "cloudflare %s %s failed (%s)", method, template, type(exc).__name__, extra=extra
            )
            # a refused connection never reached Cloudflare; anything later might have
            ambiguous = not isinstance(exc, httpx.ConnectError)
            return Attempt(None, "could not be reached", ambiguous=ambiguous, late=ambiguous)
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
        plan: CallPlan,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> tuple[httpx.Response, int]:
        """The first final response and how many attempts it took; ``EdgeUnavailable`` when
        none came before the deadline. Only for requests that are safe to repeat."""
        call = self.begin(what, plan)
        try:
            while True:
                outcome = await self.attempt(method, path, template, call, params=params, json=json)
                if outcome.final and outcome.response is not None:
                    return outcome.response, call.attempts + 1
                await self.retry_wait(call, outcome)
        finally:
            await self.over(call)

    async def send(
        self,
        method: str,
        path: str,
        template: str,
        what: str,
        plan: CallPlan,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        response, _ = await self.send_counted(
            method, path, template, what, plan, params=params, json=json
        )
        return response
