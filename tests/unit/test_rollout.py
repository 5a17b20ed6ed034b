"""Rollout rules: step splits, the health gate and its summary line, probes, what comes next."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.config import Rollout
from bot.engine.model import VersionMetrics, VersionShare
from bot.engine.rollout import (
    GateVerdict,
    ProbeRecord,
    bake_deadline,
    bake_for,
    evaluate_gate,
    gate_summary,
    next_action,
    split_for,
)

Counts = tuple[int, int] | None  # (requests, errors) or no metrics at all


def _metrics(version: str, counts: Counts) -> VersionMetrics | None:
    return VersionMetrics(version, *counts) if counts is not None else None


def _probes(*results: tuple[bool, int | None, str | None]) -> ProbeRecord:
    record = ProbeRecord()
    for ok, status, detail in results:
        record = record.record(ok, status, detail)
    return record


def _gate(
    new: Counts,
    stable: Counts = None,
    *,
    probes: ProbeRecord | None = None,
    extended: bool = False,
    percent: int = 10,
    **rules: Any,
) -> GateVerdict:
    return evaluate_gate(
        Rollout(**rules),
        percent,
        _metrics("new", new),
        _metrics("old", stable),
        probes,
        extended,
    )


# -- splits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stable", "percent", "expected"),
    [
        ("old", 10, (("new", 10), ("old", 90))),
        ("old", 50, (("new", 50), ("old", 50))),
        ("old", 99, (("new", 99), ("old", 1))),
        ("old", 100, (("new", 100),)),
        (None, 10, (("new", 100),)),
        ("", 10, (("new", 100),)),
        ("new", 10, (("new", 100),)),  # the "stable" version is the new one: nothing to split
    ],
)
def test_split_for(stable: str | None, percent: int, expected: tuple[tuple[str, int], ...]) -> None:
    split = split_for("new", stable, percent)
    assert split == tuple(VersionShare(v, p) for v, p in expected)
    assert sum(s.percentage for s in split) == 100


@pytest.mark.parametrize("percent", [0, -5, 100.5, 150])
def test_split_for_refuses_impossible_percentages(percent: float) -> None:
    with pytest.raises(ValueError, match="percentage"):
        split_for("new", "old", percent)


# -- the gate -------------------------------------------------------------------------------

LOW_40 = "only 40 requests reached the new version at 10% (minimum 100)"

GATE_CASES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    ("healthy", dict(new=(1204, 2), stable=(9000, 9)), "pass", []),
    ("exactly at the error-rate limit", dict(new=(1000, 10)), "pass", []),
    ("exactly at the limit, 3 in 300", dict(new=(300, 3)), "pass", []),
    (
        "just above the error-rate limit",
        dict(new=(1000, 11)),
        "fail",
        ["error rate 1.1% is above the 1.0% limit"],
    ),
    (
        "above the limit by less than the shown precision",
        dict(new=(10000, 104)),
        "fail",
        ["error rate 1.04% is above the 1.0% limit"],
    ),
    (
        "a limit with two decimals is shown exactly",
        dict(new=(1000, 3), max_error_rate=0.0025),
        "fail",
        ["error rate 0.30% is above the 0.25% limit"],
    ),
    ("exactly at the ratio limit", dict(new=(1000, 4), stable=(1000, 2)), "pass", []),
    (
        "exactly at the ratio limit, uneven",
        dict(new=(300, 6), stable=(700, 7), max_error_rate=0.05),
        "pass",
        [],
    ),
    (
        "just above the ratio limit",
        dict(new=(1000, 5), stable=(1000, 2)),
        "fail",
        ["error rate 0.5% is 2.5× the stable version's 0.2% (limit 2.0×)"],
    ),
    (
        "ratio above the limit by less than one decimal",
        dict(new=(10000, 102), stable=(10000, 50), max_error_rate=0.05),
        "fail",
        ["error rate 1.0% is 2.04× the stable version's 0.5% (limit 2.0×)"],
    ),
    (
        "small rates keep their digits",
        dict(new=(100000, 30), stable=(100000, 10)),
        "fail",
        ["error rate 0.03% is 3.0× the stable version's 0.01% (limit 2.0×)"],
    ),
    (
        "both rate rules",
        dict(new=(1000, 32), stable=(1000, 8)),
        "fail",
        [
            "error rate 3.2% is above the 1.0% limit",
            "error rate 3.2% is 4.0× the stable version's 0.8% (limit 2.0×)",
        ],
    ),
    (
        "stable without errors: only the absolute limit",
        dict(new=(1000, 5), stable=(9000, 0)),
        "pass",
        [],
    ),
    (
        "stable without errors, new above the limit",
        dict(new=(1000, 20), stable=(9000, 0)),
        "fail",
        ["error rate 2.0% is above the 1.0% limit"],
    ),
    ("no stable metrics", dict(new=(1000, 5), stable=None), "pass", []),
    ("exactly min_requests", dict(new=(100, 0)), "pass", []),
    (
        "one below min_requests",
        dict(new=(99, 0)),
        "extend",
        ["only 99 requests reached the new version at 10% (minimum 100); baking once more"],
    ),
    (
        "one request",
        dict(new=(1, 0)),
        "extend",
        ["only 1 request reached the new version at 10% (minimum 100); baking once more"],
    ),
    ("low traffic: extend", dict(new=(40, 0)), "extend", [f"{LOW_40}; baking once more"]),
    (
        "low traffic with errors: extend, the rates are noise",
        dict(new=(40, 20), stable=(900, 1)),
        "extend",
        [f"{LOW_40}; baking once more"],
    ),
    (
        "no new traffic against a stable version with errors",
        dict(new=None, stable=(900, 9), extended=True),
        "pass",
        [],
    ),
    (
        "no metrics at all count as no requests",
        dict(new=None),
        "extend",
        ["only 0 requests reached the new version at 10% (minimum 100); baking once more"],
    ),
    (
        "still low after the extension, pass policy",
        dict(new=(40, 0), extended=True),
        "pass",
        [],
    ),
    (
        "still low after the extension, fail policy",
        dict(new=(40, 0), extended=True, on_low_traffic="fail"),
        "fail",
        [f"{LOW_40} even after a longer bake (on_low_traffic: fail)"],
    ),
    (
        "still low after the extension with failing rates, pass policy",
        dict(new=(40, 20), extended=True),
        "fail",
        ["error rate 50.0% is above the 1.0% limit"],
    ),
    (
        "enough traffic after the extension",
        dict(new=(400, 0), extended=True, on_low_traffic="fail"),
        "pass",
        [],
    ),
    ("min_requests 0 and no traffic", dict(new=None, min_requests=0), "pass", []),
    (
        "custom min_requests in the words",
        dict(new=(1500, 0), min_requests=2000, percent=50),
        "extend",
        ["only 1,500 requests reached the new version at 50% (minimum 2,000); baking once more"],
    ),
]


@pytest.mark.parametrize(
    ("case", "outcome", "reasons"),
    [(c[1], c[2], c[3]) for c in GATE_CASES],
    ids=[c[0] for c in GATE_CASES],
)
def test_gate_rules(case: dict[str, Any], outcome: str, reasons: list[str]) -> None:
    verdict = _gate(**case)
    assert (verdict.outcome, verdict.reasons) == (outcome, reasons)


@pytest.mark.parametrize(
    ("case", "note"),
    [
        (
            dict(new=(40, 0), extended=True),
            f"{LOW_40} even after a longer bake (on_low_traffic: pass)",
        ),
        (dict(new=(40, 20), extended=True), f"{LOW_40} even after a longer bake"),
        (dict(new=(40, 0), extended=True, on_low_traffic="fail"), None),
        (dict(new=(40, 0)), None),
        (dict(new=(1000, 0)), None),
    ],
)
def test_light_traffic_is_a_note_not_a_reason(case: dict[str, Any], note: str | None) -> None:
    verdict = _gate(**case)
    assert verdict.note == note
    assert all("even after a longer bake" not in r for r in verdict.reasons) or note is None
    assert GateVerdict.from_dict(verdict.to_dict()) == verdict


PROBE_CASES: list[tuple[str, ProbeRecord, dict[str, Any], str, list[str]]] = [
    (
        "three failures in a row",
        _probes((False, 500, None), (False, 500, None), (False, 500, None)),
        dict(new=(1204, 2), stable=(9000, 9)),
        "fail",
        ["3 health probes failed in a row (HTTP 500)"],
    ),
    (
        "two in a row pass",
        _probes((False, 500, None), (False, 503, None), (True, 200, None)),
        dict(new=(1204, 2)),
        "pass",
        [],
    ),
    (
        "a run that recovered still fails the gate",
        _probes(*[(False, 502, None)] * 3, (True, 200, None), (True, 200, None)),
        dict(new=(1204, 2)),
        "fail",
        ["3 health probes failed in a row (HTTP 502)"],
    ),
    (
        "failures that are not consecutive pass",
        _probes(*[(False, 500, None), (True, 200, None)] * 3),
        dict(new=(1204, 2)),
        "pass",
        [],
    ),
    (
        "no HTTP answer: the detail says why",
        _probes(*[(False, None, "timed out after 5s")] * 3),
        dict(new=(1204, 2)),
        "fail",
        ["3 health probes failed in a row (timed out after 5s)"],
    ),
    (
        "probes fail a low-traffic gate at once",
        _probes(*[(False, 500, None)] * 3),
        dict(new=(40, 20)),
        "fail",
        ["3 health probes failed in a row (HTTP 500)"],
    ),
    (
        "probes and rates",
        _probes(*[(False, 500, None)] * 4),
        dict(new=(1000, 32), stable=(1000, 8)),
        "fail",
        [
            "4 health probes failed in a row (HTTP 500)",
            "error rate 3.2% is above the 1.0% limit",
            "error rate 3.2% is 4.0× the stable version's 0.8% (limit 2.0×)",
        ],
    ),
    (
        "a custom threshold of one",
        _probes((False, 404, None)),
        dict(new=(1204, 2), probe_failures=1),
        "fail",
        ["1 health probe failed in a row (HTTP 404)"],
    ),
]


@pytest.mark.parametrize(
    ("probes", "case", "outcome", "reasons"),
    [c[1:] for c in PROBE_CASES],
    ids=[c[0] for c in PROBE_CASES],
)
def test_gate_probe_rules(
    probes: ProbeRecord, case: dict[str, Any], outcome: str, reasons: list[str]
) -> None:
    verdict = _gate(probes=probes, **case)
    assert (verdict.outcome, verdict.reasons) == (outcome, reasons)


def test_verdict_carries_the_numbers() -> None:
    verdict = _gate((1000, 32), (4000, 32), probes=_probes((False, 500, None)))
    assert verdict.new_requests == 1000
    assert verdict.new_errors == 32
    assert verdict.new_rate == pytest.approx(0.032)
    assert verdict.stable_requests == 4000
    assert verdict.stable_errors == 32
    assert verdict.stable_rate == pytest.approx(0.008)
    assert verdict.ratio == pytest.approx(4.0)
    assert verdict.probe_failures == 1


def test_ratio_is_undefined_without_stable_errors() -> None:
    assert _gate((1000, 5), (9000, 0)).ratio is None
    assert _gate((1000, 5), None).ratio is None


def test_verdict_survives_json() -> None:
    verdict = _gate((1000, 32), (1000, 8))
    assert GateVerdict.from_dict(json.loads(json.dumps(verdict.to_dict()))) == verdict


def test_verdict_from_partial_dict() -> None:
    verdict = GateVerdict.from_dict({"outcome": "pass", "new_requests": 5})
    assert verdict == GateVerdict("pass", [], new_requests=5)
    assert GateVerdict.from_dict({"outcome": "bogus"}).outcome == "fail"


# -- the summary line -----------------------------------------------------------------------

SUMMARY_CASES = [
    (
        10,
        dict(new=(1204, 2), stable=(9000, 9)),
        "10%: 1,204 requests, 0.2% errors vs 0.1% stable — pass",
    ),
    (
        50,
        dict(new=(1000, 32), stable=(1000, 8), percent=50),
        "50%: 1,000 requests, 3.2% errors vs 0.8% stable — fail: "
        "error rate 3.2% is above the 1.0% limit; "
        "error rate 3.2% is 4.0× the stable version's 0.8% (limit 2.0×)",
    ),
    (
        100,
        dict(new=(2500, 2), percent=100),
        "100%: 2,500 requests, 0.1% errors — pass",
    ),
    (
        100,
        dict(new=(2500, 2), stable=(0, 0), percent=100),
        "100%: 2,500 requests, 0.1% errors — pass",
    ),
    (
        100,
        dict(new=(2500, 2), stable=(12, 0), percent=100),
        "100%: 2,500 requests, 0.1% errors — pass",
    ),
    (
        10,
        dict(new=(1, 0), stable=(1_250_000, 1250)),
        "10%: 1 request, 0.0% errors vs 0.1% stable — extend: "
        "only 1 request reached the new version at 10% (minimum 100); baking once more",
    ),
    (
        10,
        dict(new=(40, 0), extended=True),
        "10%: 40 requests, 0.0% errors vs no stable traffic — pass · note: "
        f"{LOW_40} even after a longer bake (on_low_traffic: pass)",
    ),
    (
        10,
        dict(new=(40, 20), extended=True),
        "10%: 40 requests, 50.0% errors vs no stable traffic — fail: "
        f"error rate 50.0% is above the 1.0% limit · note: {LOW_40} even after a longer bake",
    ),
    (
        10,
        dict(new=(12_345, 1), stable=(111_111, 11)),
        "10%: 12,345 requests, 0.01% errors vs 0.01% stable — pass",
    ),
]


@pytest.mark.parametrize(("percent", "case", "expected"), SUMMARY_CASES)
def test_gate_summary(percent: int, case: dict[str, Any], expected: str) -> None:
    assert gate_summary(percent, _gate(**case)) == expected


def test_gate_summary_with_a_fractional_step() -> None:
    line = gate_summary(12.5, GateVerdict("pass", new_requests=10, stable_requests=10))
    assert line == "12.5%: 10 requests, 0.0% errors vs 0.0% stable — pass"


# -- probes ---------------------------------------------------------------------------------


def test_probe_record_counts() -> None:
    record = _probes(
        (False, 500, "boom"), (False, 503, None), (True, 200, None), (False, None, "refused")
    )
    assert record == ProbeRecord(
        probes=4,
        failures=3,
        consecutive_failures=1,
        longest_failure_run=2,
        last_failure_status=None,
        last_failure_detail="refused",
    )


def test_probe_record_is_immutable() -> None:
    empty = ProbeRecord()
    after = empty.record(False, 500)
    assert empty == ProbeRecord()
    assert after.failures == 1


def test_probe_record_survives_json() -> None:
    record = _probes((False, 500, "Internal\nServer Error"), (False, 500, None))
    again = ProbeRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert record.last_failure_detail is None  # the last failure had no detail
    assert _probes((False, 500, "Internal\nServer  Error")).last_failure_detail == (
        "Internal Server Error"
    )


def test_probe_record_from_nothing() -> None:
    assert ProbeRecord.from_dict(None) == ProbeRecord()
    assert ProbeRecord.from_dict({"consecutive_failures": 2}).consecutive_failures == 2


def test_probe_detail_is_clipped() -> None:
    detail = _probes((False, None, "x" * 1000)).last_failure_detail
    assert detail is not None and len(detail) == 200 and detail.endswith("…")


# -- what comes next ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "index", "outcome", "action"),
    [
        ((10, 50, 100), 0, "pass", "next_step"),
        ((10, 50, 100), 1, "pass", "next_step"),
        ((10, 50, 100), 2, "pass", "verified"),
        ((100,), 0, "pass", "verified"),
        ((10, 50, 100), 0, "fail", "roll_back"),
        ((10, 50, 100), 2, "fail", "roll_back"),
        ((10, 50, 100), 1, "extend", "extend"),
    ],
)
def test_next_action(plan: tuple[int, ...], index: int, outcome: str, action: str) -> None:
    assert next_action(plan, index, GateVerdict(outcome)) == action  # type: ignore[arg-type]


@pytest.mark.parametrize("index", [-1, 3])
def test_next_action_refuses_a_step_outside_the_plan(index: int) -> None:
    with pytest.raises(ValueError, match="not in the plan"):
        next_action((10, 50, 100), index, GateVerdict("pass"))


def test_bake_deadline() -> None:
    start = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    bake = timedelta(minutes=5)
    assert bake_deadline(start, bake, extended=False) == start + bake
    assert bake_deadline(start, bake, extended=True) == start + 2 * bake


def test_bake_for_uses_the_verify_window_at_100_only_when_set() -> None:
    plain = Rollout(bake="5m")
    assert bake_for(plain, 100) == timedelta(minutes=5)
    windowed = Rollout(bake="5m", verify_window="15m")
    assert bake_for(windowed, 50) == timedelta(minutes=5)
    assert bake_for(windowed, 100) == timedelta(minutes=15)


# -- the config keys the gate reads ---------------------------------------------------------


def test_new_rollout_keys_have_defaults() -> None:
    rollout = Rollout()
    assert rollout.min_requests == 100
    assert rollout.on_low_traffic == "pass"
    assert rollout.probe_failures == 3
    assert rollout.probe_interval == timedelta(seconds=5)
    assert rollout.verify_window == timedelta(0)


def test_new_rollout_keys_parse() -> None:
    rollout = Rollout.model_validate(
        {
            "min_requests": 500,
            "on_low_traffic": "fail",
            "probe_failures": 5,
            "probe_interval": "10s",
            "verify_window": "15m",
        }
    )
    assert (rollout.min_requests, rollout.on_low_traffic, rollout.probe_failures) == (
        500,
        "fail",
        5,
    )
    assert rollout.probe_interval == timedelta(seconds=10)
    assert rollout.verify_window == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("on_low_traffic", "maybe", "'pass' or 'fail'"),
        ("min_requests", -1, "greater than or equal to 0"),
        ("probe_failures", 0, "greater than or equal to 1"),
        ("probe_interval", "0s", "at least 1s"),
        ("verify_window", "soon", "not a duration"),
    ],
)
def test_new_rollout_keys_refuse_bad_values(key: str, value: Any, words: str) -> None:
    with pytest.raises(ValidationError) as err:
        Rollout.model_validate({key: value})
    assert words in str(err.value)


def test_docstring_examples_hold() -> None:
    import doctest

    from bot.engine import rollout as module

    assert doctest.testmod(module).failed == 0


@settings(max_examples=300, deadline=None)
@given(
    new=st.none() | st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
    stable=st.none() | st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
    run=st.integers(0, 5),
    extended=st.booleans(),
)
def test_gate_never_passes_a_version_over_a_limit(
    new: Counts, stable: Counts, run: int, extended: bool
) -> None:
    # errors never exceed requests in real analytics
    new = (max(new), min(new)) if new else None
    stable = (max(stable), min(stable)) if stable else None
    probes = _probes(*[(False, 500, None)] * run)
    verdict = _gate(new, stable, probes=probes, extended=extended)
    assert verdict.outcome in ("pass", "fail", "extend")
    if verdict.outcome == "pass":
        assert run < 3
        assert verdict.new_rate <= 0.01
        assert verdict.ratio is None or verdict.ratio <= 2.0 + 1e-9
    if verdict.outcome == "extend":
        assert not extended and verdict.new_requests < 100
