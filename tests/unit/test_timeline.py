"""The post-incident timeline of a release, built from its audit entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bot.config import Rollout
from bot.engine.model import AuditEntry, Kind, Release, Strategy, VersionMetrics
from bot.engine.rollout import ProbeRecord, evaluate_gate
from bot.engine.states import State
from bot.engine.timeline import build_timeline

NEW = "1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6"
OLD = "0f9e8d7c6b5a49382716059483726150"
BOT = "releasebot"


def _at(hms: str, day: int = 14) -> datetime:
    h, m, s = (int(x) for x in hms.split(":"))
    return datetime(2026, 3, day, h, m, s, tzinfo=UTC)


def _release(**changes: Any) -> Release:
    release = Release(
        service="tax-api",
        environment="production",
        script="tax-api-production",
        version_id=NEW,
        version_tag="v1.4.2",
        stable_version_id=OLD,
        requested_by="U0ALICE",
        policy="production",
        kind=Kind.DEPLOY,
        strategy=Strategy.GRADUAL,
        plan=(10, 50, 100),
        state=State.ROLLED_BACK,
        approvals_required=2,
        id=42,
    )
    return release.copy(**changes)


def _entry(actor: str, action: str, hms: str, **detail: Any) -> AuditEntry:
    return AuditEntry(actor, action, _at(hms), release_id=42, release_key="R-42", detail=detail)


def _gate_detail(percent: int, new: tuple[int, int], stable: tuple[int, int], **kw: Any) -> Any:
    verdict = evaluate_gate(
        Rollout(),
        percent,
        VersionMetrics(NEW, *new),
        VersionMetrics(OLD, *stable),
        kw.get("probes"),
        False,
    )
    return {"step_percent": percent, **verdict.to_dict()}


def _rolled_back_release_entries() -> list[AuditEntry]:
    failing_probes = ProbeRecord().record(False, 500).record(False, 500).record(False, 500)
    return [
        AuditEntry(
            "U0ALICE",
            "release.requested",
            _at("14:00:00"),
            service="tax-api",
            environment="production",
            detail={
                "kind": "deploy",
                "version_id": NEW,
                "version_tag": "v1.4.2",
                "stable_version_id": OLD,
                "strategy": "gradual",
                "plan": [10, 50, 100],
                "reason": "fix rounding in the 1040 export",
                "policy": "production",
            },
        ),
        _entry(BOT, "release.awaiting_approval", "14:00:00"),
        _entry("U0BOB", "vote.approved", "14:03:10"),
        _entry("U0CAROL", "vote.approved", "14:04:00", reason="reviewed the diff"),
        _entry("U0CAROL", "release.approved", "14:04:00"),
        _entry(BOT, "d1.bookmarked", "14:04:01", bookmark="00000085-0000024c-00004c6d"),
        _entry(BOT, "release.started", "14:04:01", step_percent=10),
        _entry(
            BOT, "release.step_deployed", "14:04:03", step_percent=10, deployment_id="d10aa11bb22"
        ),
        _entry(BOT, "gate.passed", "14:09:03", **_gate_detail(10, (1204, 2), (10836, 11))),
        _entry(BOT, "release.next_step", "14:09:04", step_percent=50),
        _entry(
            BOT, "release.step_deployed", "14:09:06", step_percent=50, deployment_id="d50cc33dd44"
        ),
        _entry(
            BOT,
            "gate.failed",
            "14:12:30",
            **_gate_detail(50, (6020, 193), (6012, 48), probes=failing_probes),
        ),
        _entry(
            BOT,
            "release.rolled_back",
            "14:13:08",
            to_version_id=OLD,
            deployment_id="d00ee55ff66",
            time_to_rollback_s=38,
            outcome="health gate failed at 50%",
        ),
    ]


def test_rolled_back_release() -> None:
    text = build_timeline(_release(), _rolled_back_release_entries())
    assert text.splitlines() == [
        "R-42 · tax-api/production · v1.4.2 (1a2b3c4d) · 2026-03-14",
        "- 14:00:00 UTC · U0ALICE · requested a deploy of v1.4.2, gradual 10% → 50% → 100% "
        "(fix rounding in the 1040 export)",
        "- 14:00:00 UTC · releasebot · waiting for 2 approvals",
        "- 14:03:10 UTC · U0BOB · approved",
        "- 14:04:00 UTC · U0CAROL · approved (reviewed the diff)",
        "- 14:04:00 UTC · U0CAROL · approved the release",
        "- 14:04:01 UTC · releasebot · d1.bookmarked (bookmark=00000085-0000024c-00004c6d)",
        "- 14:04:01 UTC · releasebot · started the rollout at 10%",
        "- 14:04:03 UTC · releasebot · deployed 10% (deployment d10aa11b)",
        "- 14:09:03 UTC · releasebot · health gate 10%: 1,204 requests, 0.2% errors "
        "vs 0.1% stable — pass",
        "- 14:09:04 UTC · releasebot · moving to 50%",
        "- 14:09:06 UTC · releasebot · deployed 50% (deployment d50cc33d)",
        "- 14:12:30 UTC · releasebot · health gate 50%: 6,020 requests, 3.2% errors "
        "vs 0.8% stable — fail: 3 health probes failed in a row (HTTP 500); "
        "error rate 3.2% is above the 1.0% limit; "
        "error rate 3.2% is 4.0× the stable version's 0.8% (limit 2.0×)",
        "- 14:13:08 UTC · releasebot · rolled back to 0f9e8d7c (deployment d00ee55f), "
        "38s after detection: health gate failed at 50%",
        "Ended rolled back after 13m 8s; detection to rollback 38s.",
    ]


def test_entries_are_ordered_by_time_keeping_ties_in_order() -> None:
    entries = _rolled_back_release_entries()
    shuffled = entries[8:] + entries[:8]  # ties stay in their order
    assert build_timeline(_release(), shuffled) == build_timeline(_release(), entries)


def test_detection_to_rollback_from_the_entries_when_not_recorded() -> None:
    entries = [
        _entry(BOT, "gate.failed", "10:00:00", step_percent=10, reasons=["boom"]),
        _entry(BOT, "release.rolled_back", "10:01:15", to_version_id=OLD),
    ]
    lines = build_timeline(_release(), entries).splitlines()
    assert lines[1] == (
        "- 10:00:00 UTC · releasebot · health gate 10%: 0 requests, 0.0% errors "
        "vs no stable traffic — fail: boom"
    )
    assert lines[2] == "- 10:01:15 UTC · releasebot · rolled back to 0f9e8d7c"
    assert lines[-1] == "Ended rolled back after 1m 15s; detection to rollback 1m 15s."


def test_succeeded_release() -> None:
    entries = [
        _entry(
            BOT, "release.auto_approved", "09:00:00", reason="policy 'staging' needs no approval"
        ),
        _entry(BOT, "release.started", "09:00:01", step_percent=100),
        _entry(BOT, "release.step_deployed", "09:00:02", step_percent=100, deployment_id="dep1"),
        _entry(BOT, "release.succeeded", "09:00:05", deployment_id="dep1"),
    ]
    text = build_timeline(_release(state=State.SUCCEEDED, version_tag=None), entries)
    assert text.splitlines() == [
        "R-42 · tax-api/production · 1a2b3c4d · 2026-03-14",
        "- 09:00:00 UTC · releasebot · approved automatically (policy 'staging' needs no approval)",
        "- 09:00:01 UTC · releasebot · started the rollout at 100%",
        "- 09:00:02 UTC · releasebot · deployed 100% (deployment dep1)",
        "- 09:00:05 UTC · releasebot · succeeded: 1a2b3c4d serves 100% (deployment dep1)",
        "Ended succeeded after 5s.",
    ]


def test_failed_release_says_whether_the_stable_version_is_back() -> None:
    entries = [
        _entry(
            BOT, "release.failed", "09:00:00", outcome="Cloudflare refused", stable_restored=True
        ),
        _entry(BOT, "release.failed", "09:00:01", stable_restored=False),
    ]
    lines = build_timeline(_release(state=State.FAILED), entries).splitlines()
    assert lines[1].endswith("failed: Cloudflare refused; stable version back at 100%")
    assert lines[2].endswith("· failed; stable version NOT confirmed back at 100%")


def test_a_release_in_flight_says_so() -> None:
    entries = [_entry(BOT, "release.started", "09:00:00", step_percent=10)]
    entries.append(_entry(BOT, "release.step_deployed", "09:05:00", step_percent=10))
    text = build_timeline(_release(state=State.VERIFYING), entries)
    assert text.splitlines()[-1] == "Still verifying after 5m."


def test_midnight_shows_the_date() -> None:
    entries = [
        _entry(BOT, "release.started", "23:59:50", step_percent=10),
        AuditEntry(BOT, "release.next_step", _at("00:00:10", day=15), detail={"step_percent": 50}),
    ]
    lines = build_timeline(_release(state=State.DEPLOYING), entries).splitlines()
    assert lines[1] == "- 23:59:50 UTC · releasebot · started the rollout at 10%"
    assert lines[2] == "- 2026-03-15 00:00:10 UTC · releasebot · moving to 50%"


def test_other_time_zones_and_naive_times() -> None:
    pdt = timezone(timedelta(hours=-7), "PDT")
    naive = AuditEntry(BOT, "release.started", datetime(2026, 3, 14, 16, 0, 0))
    lines = build_timeline(_release(state=State.DEPLOYING), [naive], tz=pdt).splitlines()
    assert lines[0].endswith("· 2026-03-14")
    assert lines[1] == "- 09:00:00 PDT · releasebot · started the rollout"


def test_long_and_multiline_values_are_clipped_to_one_line() -> None:
    entries = [
        _entry(BOT, "release.failed", "09:00:00", outcome="first line\nsecond line " + "x" * 500),
        _entry("U0ALICE", "custom.thing", "09:00:01", note="a\nb", n=3, rate=0.123456789),
    ]
    lines = build_timeline(_release(state=State.FAILED), entries).splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("- 09:00:00 UTC · releasebot · failed: first line second line xxx")
    assert lines[1].endswith("x…")
    assert len(lines[1].split(" · ", 2)[2]) == len("failed: ") + 120
    assert lines[2] == "- 09:00:01 UTC · U0ALICE · custom.thing (n=3, note=a b, rate=0.1235)"


def test_entries_of_other_releases_are_left_out() -> None:
    ours = _entry(BOT, "release.started", "09:00:00", step_percent=10)
    theirs = AuditEntry(BOT, "release.started", _at("09:00:01"), release_id=7, release_key="R-7")
    lines = build_timeline(_release(state=State.DEPLOYING), [ours, theirs]).splitlines()
    assert len(lines) == 3


def test_no_entries() -> None:
    release = _release(
        state=State.CANCELLED, created_at=_at("08:00:00"), finished_at=_at("08:30:00")
    )
    assert build_timeline(release, []).splitlines() == [
        "R-42 · tax-api/production · v1.4.2 (1a2b3c4d)",
        "Ended cancelled after 30m.",
    ]


def test_rollback_release_header_and_request() -> None:
    entries = [
        AuditEntry(
            "W0DAVE",
            "release.requested",
            _at("09:00:00"),
            detail={"kind": "rollback", "version_id": OLD, "plan": [100]},
        )
    ]
    release = _release(kind=Kind.ROLLBACK, version_id=OLD, version_tag=None, state=State.APPROVED)
    lines = build_timeline(release, entries).splitlines()
    assert lines[0] == "R-42 · tax-api/production · 0f9e8d7c · rollback · 2026-03-14"
    assert lines[1] == "- 09:00:00 UTC · W0DAVE · requested a rollback to 0f9e8d7c"


def test_docstring_examples_hold() -> None:
    import doctest

    from bot.engine import timeline as module

    assert doctest.testmod(module).failed == 0
