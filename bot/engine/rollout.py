"""Gradual rollout rules: the split of each step, the health gate, and what follows a verdict.

Pure functions over numbers the engine passes in (metrics, probe results, times); nothing
here reads a clock or calls Cloudflare. The engine stores :meth:`GateVerdict.to_dict` in the
step's ``gate`` JSON and in the ``gate.*`` audit entries, and :meth:`ProbeRecord.to_dict`
between probes.

>>> from bot.config import Rollout
>>> from bot.engine.model import VersionMetrics
>>> verdict = evaluate_gate(
...     Rollout(), 10, VersionMetrics("new", 1204, 2), VersionMetrics("old", 9000, 9), None, False
... )
>>> gate_summary(10, verdict)
'10%: 1,204 requests, 0.2% errors vs 0.1% stable — pass'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Literal

from bot.config import Rollout
from bot.engine.model import VersionMetrics, VersionShare

Outcome = Literal["pass", "fail", "extend"]
Action = Literal["next_step", "verified", "roll_back", "extend"]

_DETAIL_MAX = 200  # a probe's failure detail is stored in JSON on every probe; keep it short


def split_for(
    new_version_id: str, stable_version_id: str | None, percent: float
) -> tuple[VersionShare, ...]:
    """The traffic split of a step: the new version at ``percent``, the stable one the rest.

    Without a stable version (a first deploy) or at 100%, the new version takes everything.

    >>> split_for("new", "old", 10)
    (VersionShare(version_id='new', percentage=10), VersionShare(version_id='old', percentage=90))
    >>> split_for("new", None, 10)
    (VersionShare(version_id='new', percentage=100),)
    """
    if not 0 < percent <= 100:
        raise ValueError(f"a step's percentage must be in (0, 100], not {percent}")
    # Splitting a version with itself is a 100% deployment with extra steps; Cloudflare
    # would also see two entries for one version.
    if percent >= 100 or not stable_version_id or stable_version_id == new_version_id:
        return (VersionShare(new_version_id, 100),)
    return (
        VersionShare(new_version_id, percent),
        VersionShare(stable_version_id, 100 - percent),
    )


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """Health probes of one step so far, as counters (cheap to store after every probe).

    ``longest_failure_run`` is what the gate judges: a version that failed three probes in a
    row mid-bake and then recovered still failed users for that long.

    >>> record = ProbeRecord().record(False, 500).record(False, 502)
    >>> record.consecutive_failures, record.last_failure_status
    (2, 502)
    >>> record.record(True, 200).consecutive_failures
    0
    """

    probes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    longest_failure_run: int = 0
    last_failure_status: int | None = None
    last_failure_detail: str | None = None

    def record(self, ok: bool, status: int | None = None, detail: str | None = None) -> ProbeRecord:
        """This record with one more probe result (``status`` None: no HTTP answer at all)."""
        if ok:
            return replace(self, probes=self.probes + 1, consecutive_failures=0)
        run = self.consecutive_failures + 1
        return replace(
            self,
            probes=self.probes + 1,
            failures=self.failures + 1,
            consecutive_failures=run,
            longest_failure_run=max(run, self.longest_failure_run),
            last_failure_status=status,
            last_failure_detail=_clip(detail, _DETAIL_MAX) if detail else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "probes": self.probes,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "longest_failure_run": self.longest_failure_run,
            "last_failure_status": self.last_failure_status,
            "last_failure_detail": self.last_failure_detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProbeRecord:
        """Read :meth:`to_dict` back; missing keys take their defaults (older stored gates)."""
        data = data or {}
        status = data.get("last_failure_status")
        detail = data.get("last_failure_detail")
        return cls(
            probes=int(data.get("probes", 0)),
            failures=int(data.get("failures", 0)),
            consecutive_failures=int(data.get("consecutive_failures", 0)),
            longest_failure_run=int(data.get("longest_failure_run", 0)),
            last_failure_status=int(status) if status is not None else None,
            last_failure_detail=str(detail) if detail is not None else None,
        )


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """The health gate's decision on one step, with the numbers it was made on.

    ``ratio`` is the new version's error rate over the stable one's; None when the stable
    version had no errors (the ratio is undefined). ``probe_failures`` is the longest run of
    consecutive failed health probes. ``reasons`` say why the gate failed or was extended;
    ``note`` is a remark on the numbers that is no reason (light traffic after the extension).
    """

    outcome: Outcome
    reasons: list[str] = field(default_factory=list)
    new_requests: int = 0
    new_errors: int = 0
    new_rate: float = 0.0
    stable_requests: int = 0
    stable_errors: int = 0
    stable_rate: float = 0.0
    ratio: float | None = None
    probe_failures: int = 0
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; these are the keys the timeline reads from ``gate.*`` audit entries."""
        return {
            "outcome": self.outcome,
            "reasons": list(self.reasons),
            "new_requests": self.new_requests,
            "new_errors": self.new_errors,
            "new_rate": self.new_rate,
            "stable_requests": self.stable_requests,
            "stable_errors": self.stable_errors,
            "stable_rate": self.stable_rate,
            "ratio": self.ratio,
            "probe_failures": self.probe_failures,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateVerdict:
        """Read :meth:`to_dict` back; missing numbers are 0 (an unknown outcome is "fail")."""
        outcome = data.get("outcome")
        ratio = data.get("ratio")
        return cls(
            outcome=outcome if outcome in ("pass", "fail", "extend") else "fail",
            reasons=[str(r) for r in data.get("reasons") or []],
            new_requests=int(data.get("new_requests") or 0),
            new_errors=int(data.get("new_errors") or 0),
            new_rate=float(data.get("new_rate") or 0.0),
            stable_requests=int(data.get("stable_requests") or 0),
            stable_errors=int(data.get("stable_errors") or 0),
            stable_rate=float(data.get("stable_rate") or 0.0),
            ratio=float(ratio) if ratio is not None else None,
            probe_failures=int(data.get("probe_failures") or 0),
            note=str(data["note"]) if data.get("note") else None,
        )


def evaluate_gate(
    policy_rollout: Rollout,
    step_percent: float,
    new: VersionMetrics | None,
    stable: VersionMetrics | None,
    probes: ProbeRecord | None,
    extended: bool,
) -> GateVerdict:
    """Judge a step after its bake from the versions' numbers and the health probes.

    Rules, all of which are reported when several hold:

    - ``probe_failures`` consecutive failed probes fail the gate, whatever the traffic.
    - The new version's error rate above ``max_error_rate`` fails it (equal passes).
    - Its rate above ``max_error_rate_ratio`` times the stable version's fails it. When the
      stable version had no errors the ratio is undefined: one error would be an infinite
      ratio and fail every quiet canary, so only the absolute limit applies then.
    - Fewer than ``min_requests`` requests to the new version make its rates noise: the
      first time the verdict is "extend" (bake once more). After the extension the rate
      rules apply to what traffic there was (a version failing 5 of 40 requests is not
      passed because traffic was light); if they hold, ``on_low_traffic`` decides.

    Missing metrics count as no requests. Comparisons are exact (no float rounding at the
    limits): 1 error in 100 requests is exactly a 1% rate.

    >>> from bot.config import Rollout
    >>> v = evaluate_gate(Rollout(), 10, VersionMetrics("n", 40, 0), None, None, False)
    >>> v.outcome, v.reasons
    ('extend', ['only 40 requests reached the new version at 10% (minimum 100); baking once more'])
    """
    rules = policy_rollout
    new_req, new_err = (new.requests, new.errors) if new else (0, 0)
    stable_req, stable_err = (stable.requests, stable.errors) if stable else (0, 0)
    new_rate = new_err / new_req if new_req else 0.0
    stable_rate = stable_err / stable_req if stable_req else 0.0
    ratio = new_rate / stable_rate if stable_rate > 0 else None
    run = probes.longest_failure_run if probes else 0

    rate_reasons = []
    if new_req and Fraction(new_err, new_req) > _exact(rules.max_error_rate):
        shown, limit = _distinct_pcts(new_rate, rules.max_error_rate)
        rate_reasons.append(f"error rate {shown} is above the {limit} limit")
    if ratio is not None and new_req:
        exact_ratio = Fraction(new_err * stable_req, new_req * stable_err)
        if exact_ratio > _exact(rules.max_error_rate_ratio):
            shown, limit = _distinct_ratios(ratio, rules.max_error_rate_ratio)
            rate_reasons.append(
                f"error rate {_readable(new_rate)} is {shown} the stable version's "
                f"{_readable(stable_rate)} (limit {limit})"
            )

    def verdict(outcome: Outcome, reasons: list[str], note: str | None = None) -> GateVerdict:
        return GateVerdict(
            outcome,
            reasons,
            new_requests=new_req,
            new_errors=new_err,
            new_rate=new_rate,
            stable_requests=stable_req,
            stable_errors=stable_err,
            stable_rate=stable_rate,
            ratio=ratio,
            probe_failures=run,
            note=note,
        )

    low = new_req < rules.min_requests
    if probes is not None and run >= rules.probe_failures:
        # Probes are evidence on their own; on light traffic the rates are not.
        return verdict("fail", [_probe_reason(probes), *([] if low else rate_reasons)])
    if not low:
        return verdict("fail", rate_reasons) if rate_reasons else verdict("pass", [])
    few = (
        f"only {_count(new_req, 'request')} reached the new version at {step_percent:g}% "
        f"(minimum {rules.min_requests:,})"
    )
    if not extended:
        return verdict("extend", [f"{few}; baking once more"])
    if rate_reasons:
        # The rates fail it; that traffic was light is a remark on them, not a reason.
        return verdict("fail", rate_reasons, f"{few} even after a longer bake")
    if rules.on_low_traffic == "fail":
        return verdict("fail", [f"{few} even after a longer bake (on_low_traffic: fail)"])
    return verdict("pass", [], f"{few} even after a longer bake (on_low_traffic: pass)")


def gate_summary(step_percent: float, verdict: GateVerdict) -> str:
    """One line on a gate, for the release thread and the audit channel.

    The new version's numbers, then the stable version's rate to compare with — below 100%
    only: at 100% the stable version serves nothing, so there is nothing to compare — then
    the outcome, its reasons, and a note on the numbers when there is one. Rates show enough
    decimals that a small nonzero rate never reads 0.0%.

    >>> gate_summary(100, GateVerdict("fail", ["3 health probes failed in a row"],
    ...     new_requests=1500, new_errors=3, new_rate=0.002))
    '100%: 1,500 requests, 0.2% errors — fail: 3 health probes failed in a row'
    >>> gate_summary(10, GateVerdict("pass", new_requests=1500, new_rate=0.002))
    '10%: 1,500 requests, 0.2% errors vs no stable traffic — pass'
    """
    line = (
        f"{step_percent:g}%: {_count(verdict.new_requests, 'request')}, "
        f"{_readable(verdict.new_rate)} errors"
    )
    if step_percent < 100:
        line += (
            f" vs {_readable(verdict.stable_rate)} stable"
            if verdict.stable_requests
            else " vs no stable traffic"
        )
    line += f" — {verdict.outcome}"
    if verdict.reasons:
        line += ": " + "; ".join(verdict.reasons)
    if verdict.note:
        line += f" · note: {verdict.note}"
    return line


def next_action(
    release_plan: Sequence[int], current_step_index: int, verdict: GateVerdict
) -> Action:
    """What the release does after ``verdict`` on step ``current_step_index`` of the plan.

    >>> next_action((10, 50, 100), 0, GateVerdict("pass"))
    'next_step'
    >>> next_action((10, 50, 100), 2, GateVerdict("pass"))
    'verified'
    """
    if not 0 <= current_step_index < len(release_plan):
        raise ValueError(f"step {current_step_index} is not in the plan {list(release_plan)}")
    if verdict.outcome == "fail":
        return "roll_back"
    if verdict.outcome == "extend":
        return "extend"
    return "verified" if current_step_index == len(release_plan) - 1 else "next_step"


def bake_for(policy_rollout: Rollout, step_percent: float) -> timedelta:
    """How long a step bakes: ``verify_window`` at 100% when it is set, else ``bake``."""
    if step_percent >= 100 and policy_rollout.verify_window > timedelta(0):
        return policy_rollout.verify_window
    return policy_rollout.bake


def bake_deadline(started_at: datetime, bake: timedelta, extended: bool) -> datetime:
    """When a step's gate is judged; an extended gate waits one more ``bake``.

    >>> from datetime import UTC
    >>> bake_deadline(datetime(2026, 1, 1, 12, 0, tzinfo=UTC), timedelta(minutes=5), True)
    datetime.datetime(2026, 1, 1, 12, 10, tzinfo=datetime.timezone.utc)
    """
    return started_at + bake * (2 if extended else 1)


def format_rate(rate: float, digits: int = 1) -> str:
    """A rate (0..1) as a percentage: ``format_rate(0.0123)`` is ``"1.2%"``."""
    return f"{rate * 100:.{digits}f}%"


def _exact(limit: float) -> Fraction:
    # The decimal the operator wrote (0.01), not its binary neighbour, so 1/100 is at the limit.
    return Fraction(repr(limit))


def _digits_of(value: float, unit: float, most: int = 3) -> int:
    """Decimal places (1..most) needed to show ``value * unit`` without rounding it."""
    for digits in range(1, most + 1):
        if abs(round(value * unit, digits) - value * unit) < 1e-9:
            return digits
    return most


def _distinct_pcts(value: float, limit: float) -> tuple[str, str]:
    """Both as percentages, precise enough that "1.04%" never reads as "above the 1.0%"."""
    digits = _digits_of(limit, 100)
    while digits < 3 and format_rate(value, digits) == format_rate(limit, digits):
        digits += 1
    return format_rate(value, digits), format_rate(limit, _digits_of(limit, 100))


def _readable(rate: float) -> str:
    """One decimal, or up to three when that would show a small nonzero rate as 0.0%."""
    digits = 1
    while digits < 3 and rate > 0 and format_rate(rate, digits) == format_rate(0, digits):
        digits += 1
    return format_rate(rate, digits)


def _distinct_ratios(value: float, limit: float) -> tuple[str, str]:
    digits = _digits_of(limit, 1)
    while digits < 3 and f"{value:.{digits}f}" == f"{limit:.{digits}f}":
        digits += 1
    return f"{value:.{digits}f}×", f"{limit:.{_digits_of(limit, 1)}f}×"


def _probe_reason(probes: ProbeRecord) -> str:
    run = probes.longest_failure_run
    why = ""
    if probes.last_failure_status is not None:
        why = f" (HTTP {probes.last_failure_status})"
    elif probes.last_failure_detail:
        why = f" ({_clip(probes.last_failure_detail, 80)})"
    return f"{run} health probe{'s' if run != 1 else ''} failed in a row{why}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
