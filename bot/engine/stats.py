"""Delivery statistics (the four DORA keys) from stored releases, as pure functions.

``/release stats`` reads the releases of the window (with their steps) and the upload times
of their versions, then::

    stats = compute_stats(releases, {version_id: created_on, ...}, now, days=30)
    text = stats_text(stats)

Definitions, for each service/environment and over all of them:

* **Window** — the ``days`` before ``now``. A release belongs to it by when it started (its
  first step's intent or deployment), or by when it was requested if it never started.
* **Deploys** — releases of kind *deploy* that started: at least one step went to Cloudflare.
  Rollbacks (``/release rollback``) and D1 restores are not deploys; a release stopped before
  any traffic (smoke test, lock) is not one either.
* **Deployment frequency** — successful deploys per day (and per week) over the window.
* **Lead time** — from the version's upload (``created_on``) to the release's last step at
  100% (its ``deployed_at``; ``finished_at`` if that is missing), for successful deploys
  whose upload time is known. Median and p90 (nearest rank: the smallest value with at least
  90% of the values at or below it). A negative time (clock skew) counts as 0.
* **Change failure rate** — rolled-back plus failed deploys over deploys that ended
  (succeeded, rolled back or failed); deploys still in flight are left out until they end.
* **Time to restore** — a rolled-back or failed deploy opens an incident in its
  service/environment when it ends (``finished_at``: the moment it was detected and stopped).
  The incident closes at the next release there that succeeds (a fixed deploy or a
  ``/release rollback``); failures while it is open belong to it. Median over the closed
  incidents; the rest are reported as open.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.engine.model import Kind, Release
from bot.engine.smoke import SmokeRecord
from bot.engine.states import State

_FAILURES = frozenset({State.ROLLED_BACK, State.FAILED})
_ENDED = frozenset({State.SUCCEEDED, State.ROLLED_BACK, State.FAILED})
# A release in these states went to Cloudflare even if its steps were not loaded; a failed one
# only if it has a step (it may have failed before any traffic).
_STARTED_STATES = frozenset({State.DEPLOYING, State.VERIFYING, State.SUCCEEDED, State.ROLLED_BACK})


@dataclass(frozen=True, slots=True)
class Figures:
    """The four keys for one service/environment, or for all of them."""

    deploys: int = 0  # deploys that started
    succeeded: int = 0
    rolled_back: int = 0
    failed: int = 0
    per_day: float = 0.0  # successful deploys per day
    per_week: float = 0.0
    lead_time_median: timedelta | None = None
    lead_time_p90: timedelta | None = None
    lead_times: int = 0  # deploys the lead time is measured on
    change_failure_rate: float | None = None  # None: no deploy ended
    restore_median: timedelta | None = None
    restored: int = 0  # incidents closed
    open_incidents: int = 0

    @property
    def ended(self) -> int:
        return self.succeeded + self.rolled_back + self.failed


@dataclass(frozen=True, slots=True)
class TargetStats:
    service: str
    environment: str
    figures: Figures

    @property
    def target(self) -> str:
        return f"{self.service}/{self.environment}"


@dataclass(frozen=True, slots=True)
class Counts:
    """Every release in the window, of any kind, by where it is now."""

    releases: int = 0
    succeeded: int = 0
    rolled_back: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0
    waiting: int = 0  # requested, awaiting approval, or approved and queued
    in_flight: int = 0  # deploying or verifying
    rollbacks: int = 0  # of kind rollback (``/release rollback``)


@dataclass(frozen=True, slots=True)
class Stats:
    since: datetime
    until: datetime
    days: int
    overall: Figures
    targets: tuple[TargetStats, ...] = ()
    counts: Counts = field(default_factory=Counts)


# -- helpers ---------------------------------------------------------------------------------


def started_at(release: Release) -> datetime | None:
    """When the release's first step went out, or None if it never started."""
    times = [t for s in release.steps for t in (s.intended_at, s.deployed_at) if t is not None]
    return min(times) if times else None


def _anchor(release: Release) -> datetime | None:
    return started_at(release) or release.created_at or release.updated_at


def _started(release: Release) -> bool:
    if _stopped_by_smoke_test(release):
        return False
    return bool(release.steps) or release.state in _STARTED_STATES


def _stopped_by_smoke_test(release: Release) -> bool:
    """It held its environment, but its smoke test failed before any traffic moved (the new
    version was only ever at 0%)."""
    return (
        bool(release.steps)
        and SmokeRecord.of(release.steps[0]).outcome == "failed"
        and not any(s.deployment_id for s in release.steps)
    )


def _is_deploy(release: Release) -> bool:
    return release.kind is Kind.DEPLOY and _started(release)


def reached_100_at(release: Release) -> datetime | None:
    """When the release's last step (at 100%) went live."""
    done = [s for s in release.steps if s.deployed_at is not None and s.percent >= 100]
    if done:
        return max(done, key=lambda s: s.index).deployed_at
    return release.finished_at


def median(values: Sequence[timedelta]) -> timedelta | None:
    """The middle value; the mean of the two middle ones for an even count."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[timedelta], p: float) -> timedelta | None:
    """Nearest rank: the smallest value with at least ``p`` percent of values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _lead_times(
    deploys: Iterable[Release], uploaded: dict[str, datetime] | None
) -> list[timedelta]:
    if not uploaded:
        return []
    times = []
    for release in deploys:
        if release.state is not State.SUCCEEDED:
            continue
        upload = uploaded.get(release.version_id)
        live = reached_100_at(release)
        if upload is None or live is None:
            continue
        times.append(max(live - upload, timedelta(0)))
    return times


def _incidents(
    failures: Sequence[Release], releases: Sequence[Release]
) -> tuple[list[timedelta], int]:
    """(durations of closed incidents, open incidents) in one service/environment.

    ``failures``: its deploys in the window that rolled back or failed; ``releases``: every
    release there (any time), whose successes close incidents.
    """
    events: list[tuple[datetime, int, bool]] = []  # (when, order, opens?)
    for r in failures:
        if r.finished_at is not None:
            events.append((r.finished_at, 0, True))
    for r in releases:
        recovers = r.kind in (Kind.DEPLOY, Kind.ROLLBACK) and r.state is State.SUCCEEDED
        if recovers and r.finished_at is not None:
            events.append((r.finished_at, 1, False))
    durations: list[timedelta] = []
    opened: datetime | None = None
    for when, _, opens in sorted(events, key=lambda e: (e[0], e[1])):
        if opens:
            opened = opened or when
        elif opened is not None:
            durations.append(when - opened)
            opened = None
    return durations, int(opened is not None)


def _figures(
    deploys: Sequence[Release],
    leads: Sequence[timedelta],
    restores: Sequence[timedelta],
    open_incidents: int,
    days: int,
) -> Figures:
    succeeded = sum(r.state is State.SUCCEEDED for r in deploys)
    rolled_back = sum(r.state is State.ROLLED_BACK for r in deploys)
    failed = sum(r.state is State.FAILED for r in deploys)
    ended = succeeded + rolled_back + failed
    return Figures(
        deploys=len(deploys),
        succeeded=succeeded,
        rolled_back=rolled_back,
        failed=failed,
        per_day=succeeded / days,
        per_week=succeeded * 7 / days,
        lead_time_median=median(leads),
        lead_time_p90=percentile(leads, 90),
        lead_times=len(leads),
        change_failure_rate=(rolled_back + failed) / ended if ended else None,
        restore_median=median(restores),
        restored=len(restores),
        open_incidents=open_incidents,
    )


def _counts(releases: Sequence[Release]) -> Counts:
    states = [r.state for r in releases]
    return Counts(
        releases=len(releases),
        succeeded=states.count(State.SUCCEEDED),
        rolled_back=states.count(State.ROLLED_BACK),
        failed=states.count(State.FAILED),
        cancelled=states.count(State.CANCELLED),
        expired=states.count(State.EXPIRED),
        waiting=sum(
            s in (State.REQUESTED, State.AWAITING_APPROVAL, State.APPROVED) for s in states
        ),
        in_flight=sum(s in (State.DEPLOYING, State.VERIFYING) for s in states),
        rollbacks=sum(r.kind is Kind.ROLLBACK for r in releases),
    )


# -- the computation -------------------------------------------------------------------------


def compute_stats(
    releases: list[Release],
    versions_uploaded_at: dict[str, datetime] | None,
    now: datetime,
    days: int,
) -> Stats:
    """The four keys over the ``days`` before ``now`` (see the module docstring).

    ``releases`` may hold releases outside the window (they are left out, but a later success
    still closes an incident); ``versions_uploaded_at`` maps version ids to their upload time
    (None: lead time unknown).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    since = now - timedelta(days=days)

    def in_window(release: Release) -> bool:
        at = _anchor(release)
        return at is not None and since < at <= now

    windowed = [r for r in releases if in_window(r)]
    by_target: dict[tuple[str, str], list[Release]] = defaultdict(list)
    for release in releases:
        by_target[(release.service, release.environment)].append(release)

    targets = []
    all_deploys: list[Release] = []
    all_leads: list[timedelta] = []
    all_restores: list[timedelta] = []
    all_open = 0
    for (service, env), target_releases in sorted(by_target.items()):
        if not any(in_window(r) for r in target_releases):
            continue
        deploys = [r for r in target_releases if _is_deploy(r) and in_window(r)]
        leads = _lead_times(deploys, versions_uploaded_at)
        failures = [r for r in deploys if r.state in _FAILURES]
        restores, still_open = _incidents(failures, [r for r in target_releases if _ended(r, now)])
        targets.append(
            TargetStats(service, env, _figures(deploys, leads, restores, still_open, days))
        )
        all_deploys += deploys
        all_leads += leads
        all_restores += restores
        all_open += still_open
    return Stats(
        since=since,
        until=now,
        days=days,
        overall=_figures(all_deploys, all_leads, all_restores, all_open, days),
        targets=tuple(targets),
        counts=_counts(windowed),
    )


def _ended(release: Release, now: datetime) -> bool:
    return release.finished_at is not None and release.finished_at <= now


# -- Slack text ------------------------------------------------------------------------------


def span(value: timedelta | None) -> str:
    """A duration in its two largest units: ``45s``, ``12m 5s``, ``2h 10m``, ``1d 3h``."""
    if value is None:
        return "—"
    seconds = max(0, round(value.total_seconds()))
    if seconds == 0:
        return "0s"
    parts: list[tuple[int, str]] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount or parts:
            parts.append((amount, unit))
    shown = [f"{n}{u}" for n, u in parts[:2] if n]
    return " ".join(shown)


def _rate(value: float) -> str:
    """``3``, ``0.4``, ``0.03``: enough digits to tell a rare deploy from none."""
    text = f"{value:.2f}" if value < 1 else f"{value:.1f}"
    return text.rstrip("0").rstrip(".") or "0"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100)}%"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def stats_text(stats: Stats) -> str:
    """The stats as compact Slack mrkdwn: the four keys overall, the release counts, then one
    line per service/environment."""
    when = stats.until.strftime("%Y-%m-%d %H:%M UTC")
    head = f"*Release stats · last {_plural(stats.days, 'day')}* (to {when})"
    c, o = stats.counts, stats.overall
    if c.releases == 0 and not stats.targets:
        return f"{head}\nNo releases in this window."
    lines = [head]
    lines.append(
        f"*Deployment frequency* {_plural(o.succeeded, 'successful deploy')} · "
        f"{_rate(o.per_day)}/day · {_rate(o.per_week)}/week"
    )
    if o.lead_times:
        lines.append(
            f"*Lead time* (upload → 100%) median {span(o.lead_time_median)} · "
            f"p90 {span(o.lead_time_p90)} · {_plural(o.lead_times, 'deploy')}"
        )
    else:
        lines.append("*Lead time* (upload → 100%) — no upload times known")
    failures = o.rolled_back + o.failed
    lines.append(
        f"*Change failure rate* {_percent(o.change_failure_rate)} · "
        f"{failures} of {_plural(o.ended, 'deploy')}"
    )
    restore = f"*Time to restore* median {span(o.restore_median)} · {o.restored} restored"
    if o.open_incidents:
        restore += f" · {o.open_incidents} open"
    lines.append(restore)
    tallies = [
        (c.succeeded, "succeeded"),
        (c.rolled_back, "rolled back"),
        (c.failed, "failed"),
        (c.cancelled, "cancelled"),
        (c.expired, "expired"),
        (c.in_flight, "in flight"),
        (c.waiting, "waiting"),
    ]
    shown = " · ".join(f"{n} {label}" for n, label in tallies if n)
    lines.append(f"{_plural(c.releases, 'release')}" + (f": {shown}" if shown else ""))
    for t in stats.targets:
        f = t.figures
        parts = [f"`{t.target}` {_plural(f.deploys, 'deploy')}", f"{_rate(f.per_week)}/week"]
        if f.lead_times:
            parts.append(f"lead {span(f.lead_time_median)}")
        parts.append(f"CFR {_percent(f.change_failure_rate)}")
        if f.restored:
            parts.append(f"restore {span(f.restore_median)}")
        if f.open_incidents:
            parts.append(f"{f.open_incidents} open")
        lines.append(" · ".join(parts))
    return "\n".join(lines)
