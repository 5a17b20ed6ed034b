"""The bot's own Prometheus metrics, served on ``GET /metrics``.

One :class:`Metrics` per ``Runtime``, each with its own ``CollectorRegistry``: nothing is
registered at import time, so tests (and ``releasebot dev``) can build as many runtimes as they
like in one process without "Duplicated timeseries" errors, and one runtime's numbers never
leak into another's. ``/metrics`` serves ``generate_latest(metrics.registry)``, which also
carries the usual process, platform and GC collectors.

What is measured, and where it comes from:

* releases by outcome, step and gate durations, gate verdicts, drift — from the audit records
  the engine hands to the notifier (:meth:`Metrics.observe_audit`), so the engine stays free of
  metrics code;
* Cloudflare API calls by method, endpoint (the path template) and status, with latency —
  every attempt, retries included (``CloudflareClient(metrics=...)``);
* Slack Web API calls by method and status (``ok`` or Slack's error code), with latency
  (``make_client(metrics=...)``);
* the time to answer Slack's ``POST /slack/events`` (``bot.web.SlackEvents``): Slack
  gives up after 3 s;
* how late durable timers run after they were due (``SqlTimerRepository(on_claimed=...)``);
* the outbox backlogs (Slack audit posts, webhook events) and the age of their oldest row,
  read from the database when ``/metrics`` is scraped (:meth:`Metrics.refresh_backlog`);
* webhook deliveries by outcome (``WebhookSender(on_delivered=...)``);
* the waits Cloudflare's retry policy spends between attempts, and the waits it refuses;
* ``releasebot_build_info{version}``.

Names follow Prometheus' conventions: counters end in ``_total`` (``prometheus_client`` adds
it to the names below), durations are in seconds and end in ``_seconds``. The README's list of
metrics is checked against what is served.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from bot import __version__
from bot.engine.drift import DRIFT_ACTION
from bot.engine.model import AuditEntry

log = logging.getLogger("releasebot.metrics")

# Slack gives up on an answer after 3 s; the buckets are dense around it.
ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 3.0, 5.0)
API_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A step goes live in seconds; a gate waits out a bake of minutes to an hour.
STEP_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
GATE_BUCKETS = (1.0, 5.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)
# Timers are polled every 0.25 s; late means a busy loop, a slow database or a lost replica.
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Backoffs start under a second; Retry-After waits run to the retry budget.
RETRY_WAIT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

# Actions that start a step (its intent is written), and that end a release.
_STEP_STARTS = ("release.started", "release.next_step")
_ENDINGS = {
    "release.succeeded",
    "release.rolled_back",
    "release.failed",
    "release.cancelled",
    "release.rejected",
    "release.expired",
}


class Metrics:
    """The metrics of one runtime, in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.releases = Counter(
            "releasebot_releases_total",
            "Releases that ended, by outcome (the final state).",
            ["outcome", "environment"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "releasebot_step_duration_seconds",
            "From a step's intent to its deployment being live on Cloudflare.",
            ["environment"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.gate_seconds = Histogram(
            "releasebot_gate_duration_seconds",
            "From a step's deployment to its gate verdict (the bake and the checks).",
            ["environment"],
            buckets=GATE_BUCKETS,
            registry=r,
        )
        self.gate_verdicts = Counter(
            "releasebot_gate_verdicts_total",
            "Health gate verdicts.",
            ["verdict", "environment"],
            registry=r,
        )
        self.drifts = Counter(
            "releasebot_drift_detected_total",
            "Deployments found on Cloudflare that the bot did not make.",
            ["service", "environment"],
            registry=r,
        )
        self.cloudflare_requests = Counter(
            "releasebot_cloudflare_requests_total",
            "Cloudflare API attempts (retries count), by method, path template and status.",
            ["method", "endpoint", "status"],
            registry=r,
        )
        self.cloudflare_seconds = Histogram(
            "releasebot_cloudflare_request_duration_seconds",
            "Latency of Cloudflare API attempts.",
            ["method", "endpoint"],
            buckets=API_BUCKETS,
            registry=r,
        )
        self.slack_requests = Counter(
            "releasebot_slack_requests_total",
            "Slack Web API calls, by method and status (ok, or Slack's error code).",
            ["method", "status"],
            registry=r,
        )
        self.slack_seconds = Histogram(
            "releasebot_slack_request_duration_seconds",
            "Latency of Slack Web API calls (their retries included).",
            ["method"],
            buckets=API_BUCKETS,
            registry=r,
        )
        self.ack_seconds = Histogram(
            "releasebot_slack_ack_seconds",
            "Time to answer Slack's POST /slack/events (Slack waits 3 s at most).",
            ["status"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.timer_lateness = Histogram(
            "releasebot_timer_lateness_seconds",
            "How long after it was due a durable timer was claimed to run, by kind.",
            ["kind"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "releasebot_outbox_backlog",
            "Rows still owed to Slack (audit posts) or to webhooks, read at scrape time.",
            ["outbox"],
            registry=r,
        )
        self.outbox_age = Gauge(
            "releasebot_outbox_oldest_age_seconds",
            "Age of the oldest row still owed, by outbox (0 when none is owed).",
            ["outbox"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "releasebot_webhook_deliveries_total",
            "Webhook delivery attempts by webhook and outcome (delivered, retry, failed).",
            ["webhook", "outcome"],
            registry=r,
        )
        self.cloudflare_retry_wait = Histogram(
            "releasebot_cloudflare_retry_wait_seconds",
            "Waits between Cloudflare API attempts, by reason (backoff, retry_after).",
            ["reason"],
            buckets=RETRY_WAIT_BUCKETS,
            registry=r,
        )
        self.cloudflare_budget_wait = Histogram(
            "releasebot_cloudflare_budget_wait_seconds",
            "Time a Cloudflare call waited for the process's call budget, by priority.",
            ["priority"],
            buckets=(0.0, *RETRY_WAIT_BUCKETS),
            registry=r,
        )
        self.cloudflare_retry_refused = Counter(
            "releasebot_cloudflare_retry_refused_total",
            "Retry-After waits longer than the retry budget allows (the call gave up at once).",
            registry=r,
        )
        self.build_info = Gauge(
            "releasebot_build_info",
            "The running version (always 1).",
            ["version"],
            registry=r,
        )
        self.build_info.labels(__version__).set(1)
        for outbox in ("slack", "webhook"):
            self.outbox_backlog.labels(outbox)
            self.outbox_age.labels(outbox)
        # release id -> when its current step was intended / deployed (this process's view).
        self._step_started: dict[int, datetime] = {}
        self._step_deployed: dict[int, datetime] = {}

    def exposition(self) -> bytes:
        """The text format for ``GET /metrics``."""
        return generate_latest(self.registry)

    # -- from the audit records ---------------------------------------------------------------

    def observe_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Count what the records say happened. Never raises."""
        for entry in entries:
            try:
                self._observe(entry)
            except Exception:
                log.exception("counting audit record %s failed", entry.action)

    def _observe(self, entry: AuditEntry) -> None:
        env = entry.environment or ""
        rid = entry.release_id
        if entry.action in _STEP_STARTS and rid is not None:
            self._step_started[rid] = entry.at
            self._step_deployed.pop(rid, None)
        elif entry.action == "release.step_deployed" and rid is not None:
            started = self._step_started.pop(rid, None)
            if started is not None:
                self.step_seconds.labels(env).observe(_seconds(started, entry.at))
            self._step_deployed[rid] = entry.at
        elif entry.action in ("gate.passed", "gate.failed"):
            verdict = "pass" if entry.action == "gate.passed" else "fail"
            self.gate_verdicts.labels(verdict, env).inc()
            deployed = self._step_deployed.pop(rid, None) if rid is not None else None
            if deployed is not None:
                self.gate_seconds.labels(env).observe(_seconds(deployed, entry.at))
        elif entry.action == DRIFT_ACTION:
            self.drifts.labels(entry.service or "", env).inc()
        if entry.action in _ENDINGS:
            self.releases.labels(entry.after or entry.action.split(".", 1)[1], env).inc()
            if rid is not None:
                self._step_started.pop(rid, None)
                self._step_deployed.pop(rid, None)

    # -- read at scrape time ---------------------------------------------------------------------

    async def refresh_backlog(self, engine: Any, now: datetime) -> None:
        """Set the outbox gauges from the database. Never raises: on a database error the
        gauges keep their last values (and ``/readyz`` says what is wrong)."""
        from storage.backlog import outbox_backlog

        try:
            backlog = await outbox_backlog(engine, now)
        except Exception as exc:
            log.warning("reading the outbox backlog failed (%s)", type(exc).__name__)
            return
        for outbox, (count, age) in backlog.items():
            self.outbox_backlog.labels(outbox).set(count)
            self.outbox_age.labels(outbox).set(age)

    # -- adapters -------------------------------------------------------------------------------

    def observe_timers(self, timers: Sequence[Any], now: datetime) -> None:
        for timer in timers:
            self.timer_lateness.labels(timer.kind).observe(_seconds(timer.due_at, now))

    def observe_retry_wait(self, reason: str, seconds: float) -> None:
        self.cloudflare_retry_wait.labels(reason).observe(seconds)

    def observe_budget_wait(self, priority: str, seconds: float) -> None:
        self.cloudflare_budget_wait.labels(priority).observe(seconds)

    def observe_retry_refused(self) -> None:
        self.cloudflare_retry_refused.inc()

    def observe_deliveries(self, deliveries: Sequence[Any]) -> None:
        for delivery in deliveries:
            self.webhook_deliveries.labels(delivery.webhook, delivery.outcome).inc()

    def observe_cloudflare(self, method: str, endpoint: str, status: str, seconds: float) -> None:
        self.cloudflare_requests.labels(method, endpoint, status).inc()
        self.cloudflare_seconds.labels(method, endpoint).observe(seconds)

    def observe_slack(self, method: str, status: str, seconds: float) -> None:
        self.slack_requests.labels(method, status).inc()
        self.slack_seconds.labels(method).observe(seconds)


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())
