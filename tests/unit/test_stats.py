"""DORA statistics from hand-made releases: every number checked exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.engine.model import Kind, Release, Step, StepStatus
from bot.engine.states import State
from bot.engine.stats import (
    Counts,
    Figures,
    compute_stats,
    median,
    percentile,
    span,
    stats_text,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def m(minutes: float) -> timedelta:
    return timedelta(minutes=minutes)


def rel(
    rid: int,
    env: str,
    state: State,
    steps: list[tuple[int, datetime]] = (),  # type: ignore[assignment]
    *,
    service: str = "tax-api",
    kind: Kind = Kind.DEPLOY,
    created: datetime | None = None,
    finished: datetime | None = None,
) -> Release:
    """Release ``rid`` of version ``v<rid>``; ``steps`` are (percent, deployed_at)."""
    made = [
        Step(i, pct, StepStatus.PASSED, f"dep-{rid}-{i}", when, when)
        for i, (pct, when) in enumerate(steps)
    ]
    first = made[0].intended_at if made else None
    return Release(
        service=service,
        environment=env,
        script=f"{service}-{env}",
        version_id=f"v{rid}",
        requested_by="U0CAROL",
        policy=env,
        kind=kind,
        state=state,
        created_at=created or (first - m(30) if first else None),
        finished_at=finished,
        id=rid,
        steps=made,
    )


PROD = [
    # R1: gradual, succeeded; uploaded 08:00, at 100% at 10:20 -> lead 2h20m.
    rel(
        1,
        "production",
        State.SUCCEEDED,
        [(10, at(24, 10)), (50, at(24, 10, 10)), (100, at(24, 10, 20))],
        finished=at(24, 10, 30),
    ),
    # R2: rolled back at 10%: incident from 09:06 ...
    rel(2, "production", State.ROLLED_BACK, [(10, at(25, 9))], finished=at(25, 9, 6)),
    # R3: ... closed by this fix at 10:16 (1h10m); uploaded 09:30 -> lead 36m.
    rel(3, "production", State.SUCCEEDED, [(100, at(25, 10, 6))], finished=at(25, 10, 16)),
    # R4: Cloudflare refused the first step: incident from 14:00 ...
    rel(4, "production", State.FAILED, [(10, at(26, 14))], finished=at(26, 14)),
    # R5: ... closed by `/release rollback` at 14:30 (30m); not a deploy itself.
    rel(
        5,
        "production",
        State.SUCCEEDED,
        [(100, at(26, 14, 20))],
        kind=Kind.ROLLBACK,
        finished=at(26, 14, 30),
    ),
    # R6: succeeded, upload time unknown: no lead time.
    rel(6, "production", State.SUCCEEDED, [(100, at(27, 9))], finished=at(27, 9, 10)),
    # R7: cancelled before it started.
    rel(7, "production", State.CANCELLED, created=at(27, 11), finished=at(27, 12)),
    # R8: before the window.
    rel(8, "production", State.SUCCEEDED, [(100, at(20, 9))], finished=at(20, 9, 10)),
    # R9: rolled back and nothing succeeded since: an open incident.
    rel(9, "production", State.ROLLED_BACK, [(10, at(29, 20))], finished=at(29, 20, 5)),
]
STAGING = [
    rel(11, "staging", State.SUCCEEDED, [(100, at(24, 7))], finished=at(24, 7, 1)),
    rel(12, "staging", State.SUCCEEDED, [(100, at(25, 7))], finished=at(25, 7, 1)),
    # In flight: started, not ended.
    rel(13, "staging", State.DEPLOYING, [(10, at(30, 11))]),
    # Stopped by its smoke test before any traffic: not a deploy.
    rel(14, "staging", State.FAILED, created=at(28, 9), finished=at(28, 9, 1)),
    rel(15, "staging", State.AWAITING_APPROVAL, created=at(30, 10)),
]
OLD_WEB = [
    rel(21, "production", State.SUCCEEDED, [(100, at(10, 9))], service="tax-web"),
]
UPLOADED = {
    "v1": at(24, 8),
    "v2": at(25, 8),
    "v3": at(25, 9, 30),
    "v11": at(24, 6),
    "v12": at(25, 6, 30),
    "v21": at(10, 8),
}


def test_the_four_keys_per_environment_and_overall() -> None:
    stats = compute_stats(PROD + STAGING + OLD_WEB, UPLOADED, NOW, days=7)

    assert (stats.since, stats.until, stats.days) == (at(23, 12), NOW, 7)
    assert [t.target for t in stats.targets] == ["tax-api/production", "tax-api/staging"]
    prod, staging = (t.figures for t in stats.targets)
    assert prod == Figures(
        deploys=6,
        succeeded=3,
        rolled_back=2,
        failed=1,
        per_day=3 / 7,
        per_week=3.0,
        lead_time_median=m(88),  # (2h20m + 36m) / 2
        lead_time_p90=m(140),
        lead_times=2,
        change_failure_rate=0.5,
        restore_median=m(50),  # (1h10m + 30m) / 2
        restored=2,
        open_incidents=1,
    )
    assert staging == Figures(
        deploys=3,
        succeeded=2,
        per_day=2 / 7,
        per_week=2.0,
        lead_time_median=m(45),  # (1h + 30m) / 2
        lead_time_p90=m(60),
        lead_times=2,
        change_failure_rate=0.0,  # the one in flight has not ended
    )
    assert stats.overall == Figures(
        deploys=9,
        succeeded=5,
        rolled_back=2,
        failed=1,
        per_day=5 / 7,
        per_week=5.0,
        lead_time_median=m(48),  # 30m, 36m, 1h, 2h20m
        lead_time_p90=m(140),
        lead_times=4,
        change_failure_rate=0.375,
        restore_median=m(50),
        restored=2,
        open_incidents=1,
    )
    assert stats.counts == Counts(
        releases=13,
        succeeded=6,
        rolled_back=2,
        failed=2,
        cancelled=1,
        expired=0,
        waiting=1,
        in_flight=1,
        rollbacks=1,
    )


def test_without_upload_times_there_is_no_lead_time() -> None:
    stats = compute_stats(PROD, None, NOW, days=7)
    assert stats.overall.lead_times == 0
    assert stats.overall.lead_time_median is None and stats.overall.lead_time_p90 is None
    assert stats.overall.deploys == 6


def test_a_wider_window_takes_in_older_releases() -> None:
    stats = compute_stats(PROD + OLD_WEB, UPLOADED, NOW, days=30)
    assert [t.target for t in stats.targets] == ["tax-api/production", "tax-web/production"]
    prod, web = (t.figures for t in stats.targets)
    assert (prod.deploys, prod.succeeded, prod.per_week) == (7, 4, 4 * 7 / 30)
    assert (web.deploys, web.succeeded, web.lead_time_median) == (1, 1, m(60))
    assert web.change_failure_rate == 0.0
    assert stats.overall.per_day == 5 / 30


def test_failures_in_a_row_are_one_incident_until_the_next_success() -> None:
    releases = [
        rel(1, "production", State.ROLLED_BACK, [(10, at(28, 9))], finished=at(28, 9, 5)),
        rel(2, "production", State.FAILED, [(10, at(28, 10))], finished=at(28, 10, 1)),
        rel(3, "production", State.SUCCEEDED, [(100, at(28, 11))], finished=at(28, 11, 5)),
        rel(4, "production", State.ROLLED_BACK, [(10, at(29, 9))], finished=at(29, 9, 2)),
        rel(5, "production", State.SUCCEEDED, [(100, at(29, 9, 30))], finished=at(29, 9, 32)),
    ]
    figures = compute_stats(releases, None, NOW, days=7).overall
    assert figures.restored == 2 and figures.open_incidents == 0
    assert figures.restore_median == (m(120) + m(30)) / 2  # 09:05 -> 11:05, 09:02 -> 09:32
    assert figures.change_failure_rate == 3 / 5


def test_an_incident_before_the_window_is_not_counted_but_a_late_fix_closes_one() -> None:
    releases = [
        rel(1, "production", State.ROLLED_BACK, [(10, at(20, 9))], finished=at(20, 9, 5)),
        rel(2, "production", State.ROLLED_BACK, [(10, at(29, 23))], finished=at(29, 23, 10)),
        rel(3, "production", State.SUCCEEDED, [(100, at(30, 1))], finished=at(30, 1, 10)),
    ]
    figures = compute_stats(releases, None, NOW, days=7).overall
    assert (figures.restored, figures.restore_median, figures.open_incidents) == (1, m(120), 0)


def test_lead_time_uses_the_last_step_and_never_goes_negative() -> None:
    gradual = rel(
        1,
        "production",
        State.SUCCEEDED,
        [(10, at(29, 9)), (100, at(29, 10))],
        finished=at(29, 11),
    )
    skewed = rel(2, "production", State.SUCCEEDED, [(100, at(29, 12))], finished=at(29, 12, 5))
    uploaded = {"v1": at(29, 8), "v2": at(29, 12, 1)}  # v2 "uploaded" after it went live
    figures = compute_stats([gradual, skewed], uploaded, NOW, days=2).overall
    assert figures.lead_times == 2
    assert (figures.lead_time_median, figures.lead_time_p90) == (m(60), m(120))


def test_median_and_nearest_rank_percentile() -> None:
    values = [m(n) for n in (7, 1, 10, 3, 2, 9, 4, 6, 8, 5)]
    assert median(values) == m(5.5)
    assert median(values[:3]) == m(7)
    assert percentile(values, 90) == m(9)
    assert percentile(values, 100) == m(10)
    assert percentile(values[:1], 90) == m(7)
    assert median([]) is None and percentile([], 90) is None


def test_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        compute_stats([], None, NOW, days=0)


def test_spans() -> None:
    assert span(None) == "—"
    assert span(timedelta(0)) == "0s"
    assert span(timedelta(seconds=45)) == "45s"
    assert span(m(12) + timedelta(seconds=5)) == "12m 5s"
    assert span(m(130)) == "2h 10m"
    assert span(timedelta(hours=1, seconds=5)) == "1h"
    assert span(timedelta(days=1, hours=3, minutes=20)) == "1d 3h"


def test_stats_text() -> None:
    stats = compute_stats(PROD + STAGING + OLD_WEB, UPLOADED, NOW, days=7)
    assert stats_text(stats) == "\n".join(
        [
            "*Release stats · last 7 days* (to 2026-11-30 12:00 UTC)",
            "*Deployment frequency* 5 successful deploys · 0.71/day · 5/week",
            "*Lead time* (upload → 100%) median 48m · p90 2h 20m · 4 deploys",
            "*Change failure rate* 38% · 3 of 8 deploys",
            "*Time to restore* median 50m · 2 restored · 1 open",
            "13 releases: 6 succeeded · 2 rolled back · 2 failed · 1 cancelled · "
            "1 in flight · 1 waiting",
            "`tax-api/production` 6 deploys · 3/week · lead 1h 28m · CFR 50% · "
            "restore 50m · 1 open",
            "`tax-api/staging` 3 deploys · 2/week · lead 45m · CFR 0%",
        ]
    )


def test_stats_text_without_releases_or_upload_times() -> None:
    empty = compute_stats([], None, NOW, days=30)
    assert stats_text(empty) == (
        "*Release stats · last 30 days* (to 2026-11-30 12:00 UTC)\nNo releases in this window."
    )
    one = compute_stats(PROD[:1], None, NOW, days=1 + 6)
    text = stats_text(one)
    assert "*Lead time* (upload → 100%) — no upload times known" in text
    assert "*Deployment frequency* 1 successful deploy · 0.14/day · 1/week" in text
    assert "*Change failure rate* 0% · 0 of 1 deploy" in text


def test_a_release_stopped_by_its_smoke_test_is_not_a_deploy() -> None:
    """It held its environment and put the new version in at 0%, but no traffic moved."""
    stopped = rel(31, "staging", State.FAILED, created=at(28, 9), finished=at(28, 9, 1))
    stopped.current_step = 0
    stopped.steps = [
        Step(0, 100, StepStatus.FAILED, None, at(28, 9), None, {"smoke": {"outcome": "failed"}})
    ]
    failed_at_step = rel(32, "staging", State.FAILED, created=at(28, 10), finished=at(28, 10, 1))
    failed_at_step.current_step = 0
    failed_at_step.steps = [Step(0, 100, StepStatus.FAILED, "dep-32-0", at(28, 10), at(28, 10))]

    stats = compute_stats([stopped, failed_at_step], {}, NOW, days=7)

    assert (stats.overall.deploys, stats.overall.failed) == (1, 1)


def test_stats_in_slack_name_the_window_end_as_a_date_token() -> None:
    from bot.slack.render import stats_text as slack_stats
    from bot.slack.text import date_token

    stats = compute_stats(PROD + STAGING + OLD_WEB, UPLOADED, NOW, days=7)
    shown = slack_stats(stats)
    assert f"(to {date_token(stats.until)})" in shown
    assert " UTC)" not in shown.split("\n")[0].split("|")[0]
