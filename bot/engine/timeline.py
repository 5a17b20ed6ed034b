"""A release's audit trail as a timeline to paste into a post-incident review.

One line per audit entry, oldest first, in words; the numbers come from the entries'
``detail`` (the keys are listed at :func:`build_timeline`). Plain text that also reads as a
Markdown list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from bot.durations import format_duration
from bot.engine.model import AuditEntry, Kind, Release
from bot.engine.rollout import GateVerdict, gate_summary

_VALUE_MAX = 120  # one detail value (a reason, an outcome) in a line
_LINE_MAX = 400  # what happened, in one line
_GATE_OUTCOMES = {"gate.passed": "pass", "gate.failed": "fail", "gate.extended": "extend"}


def build_timeline(
    release: Release,
    entries: Sequence[AuditEntry],
    tz: tzinfo = UTC,
    *,
    person: Callable[[str], str] = str,
    text: Callable[[str], str] = str,
    moment: Callable[[datetime], str] | None = None,
) -> str:
    """The timeline of ``release`` from its audit ``entries``, times shown in ``tz`` (or by
    ``moment``, when given: a renderer's own way of showing a time).

    Plain text; ``person`` shows an actor (a Slack id, or the bot's name) and ``text`` every
    other part, so that a renderer can mention people and escape the rest.

    Entries are ordered by time (entries written together keep their order); entries of
    another release are left out. Naive times are taken as UTC. Detail keys read:

    - ``release.requested``: ``kind``, ``version_tag``, ``version_id``, ``plan``, ``reason``
    - ``release.auto_approved``, ``release.approved``, ``release.rejected``, ``vote.*``,
      ``release.cancelled``: ``reason``
    - ``release.started``, ``release.next_step``: ``step_percent``
    - ``release.step_deployed``: ``step_percent``, ``deployment_id``
    - ``gate.passed`` / ``gate.failed`` / ``gate.extended``: ``step_percent`` plus the keys of
      :meth:`GateVerdict.to_dict` (``new_requests``, ``new_rate``, ``stable_requests``,
      ``stable_rate``, ``reasons``, ...)
    - ``release.rolled_back``: ``to_version_id``, ``deployment_id``, ``time_to_rollback_s``,
      ``outcome``
    - ``release.failed``: ``outcome``, ``stable_restored``
    - ``release.succeeded``: ``deployment_id``

    Unknown actions are shown as they are, with their detail as ``key=value``.

    >>> from bot.engine.model import AuditEntry, Release
    >>> from bot.engine.states import State
    >>> r = Release("tax-api", "production", "tax-api", "1a2b3c4d5e", "U0ALICE", "prod",
    ...     state=State.CANCELLED, id=7)
    >>> print(build_timeline(r, [AuditEntry("U0ALICE", "release.cancelled",
    ...     datetime(2026, 3, 14, 9, 30, tzinfo=UTC))]))
    R-7 · tax-api/production · 1a2b3c4d · 2026-03-14
    - 09:30:00 UTC · U0ALICE · cancelled
    Ended cancelled after 0s.
    """
    ordered = sorted(
        (
            (_aware(e.at), i, e)
            for i, e in enumerate(entries)
            if release.id is None or e.release_id in (None, release.id)
        ),
        key=lambda item: (item[0], item[1]),
    )
    first_day = ordered[0][0].astimezone(tz).date() if ordered else None
    header = f"{release.key} · {release.target} · {_version_label(release)}"
    if release.kind is Kind.ROLLBACK:
        header += " · rollback"
    if first_day is not None and moment is None:
        header += f" · {first_day.isoformat()}"
    lines = [text(header)]
    for at, _, entry in ordered:
        if moment is not None:  # the renderer shows the moment (Slack: in the reader's time)
            shown = moment(at)
        else:
            local = at.astimezone(tz)
            when = local.strftime("%H:%M:%S %Z")
            if local.date() != first_day:
                when = f"{local.date().isoformat()} {when}"
            shown = text(when)
        what = _clip(_describe(entry, release), _LINE_MAX)
        lines.append(f"- {shown} · {person(entry.actor)} · {text(what)}")
    lines.append(text(_closing(release, [(at, e) for at, _, e in ordered])))
    return "\n".join(lines)


def _describe(entry: AuditEntry, release: Release) -> str:
    if entry.action in _GATE_OUTCOMES:
        return _gate(entry)
    words = _WORDS.get(entry.action)
    if words is not None:
        return words(entry.detail, release)
    shown = ", ".join(f"{k}={_value(v)}" for k, v in sorted(entry.detail.items()))
    return f"{entry.action} ({shown})" if shown else entry.action


def _requested(d: dict[str, Any], release: Release) -> str:
    label = d.get("version_tag") or _short(d.get("version_id")) or _version_label(release)
    kind = "rollback to" if (d.get("kind") or release.kind) == Kind.ROLLBACK else "deploy of"
    text = f"requested a {kind} {_value(label)}"
    plan = d.get("plan")
    if isinstance(plan, list | tuple) and len(plan) > 1:
        text += ", gradual " + " → ".join(f"{p}%" for p in plan)
    return text + _reason(d)


def _awaiting(d: dict[str, Any], release: Release) -> str:
    n = release.approvals_required
    return f"waiting for {n} approval{'s' if n != 1 else ''}" if n else "waiting for approval"


def _percent(prefix: str, joiner: str = "") -> Callable[[dict[str, Any], Release], str]:
    """``prefix`` and the step's percentage, or ``prefix`` alone when the entry has none."""

    def words(d: dict[str, Any], release: Release) -> str:
        p = d.get("step_percent")
        return f"{prefix}{joiner} {p}%" if p is not None else prefix

    return words


def _said(text: str) -> Callable[[dict[str, Any], Release], str]:
    return lambda d, release: text + _reason(d)


def _step_deployed(d: dict[str, Any], release: Release) -> str:
    text = _percent("deployed")(d, release)
    if d.get("deployment_id"):
        text += f" (deployment {_short(d['deployment_id'])})"
    return text


def _rolled_back(d: dict[str, Any], release: Release) -> str:
    target = d.get("to_version_id") or release.stable_version_id
    tag = release.stable_version_tag if target == release.stable_version_id else None
    shown = f"{tag} ({_short(target)})" if tag else _short(target)
    text = f"rolled back to {shown}" if target else "rolled back"
    if d.get("deployment_id"):
        text += f" (deployment {_short(d['deployment_id'])})"
    seconds = _seconds(d.get("time_to_rollback_s"))
    if seconds is not None:
        text += f", {format_duration(timedelta(seconds=seconds))} after detection"
    if d.get("outcome"):
        text += f": {_value(d['outcome'])}"
    return text


def _failed(d: dict[str, Any], release: Release) -> str:
    text = "failed"
    if d.get("outcome"):
        text += f": {_value(d['outcome'])}"
    if d.get("stable_restored") is True:
        text += "; stable version back at 100%"
    elif d.get("stable_restored") is False:
        text += "; stable version NOT confirmed back at 100%"
    return text


def _succeeded(d: dict[str, Any], release: Release) -> str:
    text = f"succeeded: {_version_label(release)} serves 100%"
    if d.get("deployment_id"):
        text += f" (deployment {_short(d['deployment_id'])})"
    return text


def _smoke_deployed(d: dict[str, Any], release: Release) -> str:
    split = d.get("split")
    share = split.get(release.version_id) if isinstance(split, dict) else None
    at = f" at {share:g}%" if isinstance(share, int | float) else ""
    text = f"smoke test: {_version_label(release)} in the deployment{at}"
    if d.get("deployment_id"):
        text += f" (deployment {_short(d['deployment_id'])})"
    return text


def _smoke_passed(d: dict[str, Any], release: Release) -> str:
    if d.get("confirmed"):
        return f"smoke test passed: {_short(d.get('answered_by') or release.version_id)} answered"
    return "smoke test passed, the version not confirmed" + _reason(d)


_WORDS: dict[str, Callable[[dict[str, Any], Release], str]] = {
    "release.requested": _requested,
    "release.awaiting_approval": _awaiting,
    "release.auto_approved": _said("approved automatically"),
    "release.approved": _said("approved the release"),
    "vote.approved": _said("approved"),
    "release.rejected": _said("rejected the release"),
    "vote.rejected": _said("rejected"),
    "release.expired": _said("expired without enough approvals"),
    "release.cancelled": _said("cancelled"),
    "release.started": _percent("started the rollout", " at"),
    "smoke.deployed": _smoke_deployed,
    "smoke.passed": _smoke_passed,
    "smoke.failed": _said("smoke test failed"),
    "smoke.skipped": _said("smoke test skipped"),
    "release.step_deployed": _step_deployed,
    "release.next_step": _percent("moving", " to"),
    "release.rolled_back": _rolled_back,
    "release.failed": _failed,
    "release.succeeded": _succeeded,
}


def _gate(entry: AuditEntry) -> str:
    # The action says how the gate ended, whatever the stored outcome claims.
    data = {**entry.detail, "outcome": _GATE_OUTCOMES[entry.action]}
    verdict = GateVerdict.from_dict(data)
    verdict = replace(
        verdict,
        reasons=[_value(r) for r in verdict.reasons],
        note=_value(verdict.note) if verdict.note else None,
    )
    percent = entry.detail.get("step_percent")
    if isinstance(percent, int | float):
        return f"health gate {gate_summary(percent, verdict)}"
    # gate_summary starts with the step ("10%: "); without one, keep what follows.
    return "health gate: " + gate_summary(0, verdict).split(": ", 1)[1]


def _closing(release: Release, ordered: list[tuple[datetime, AuditEntry]]) -> str:
    start = ordered[0][0] if ordered else _maybe_aware(release.created_at)
    end = ordered[-1][0] if ordered else _maybe_aware(release.finished_at)
    state = release.state.value.replace("_", " ")
    if start is None or end is None:
        return f"{'Ended' if release.state.is_terminal else 'Now'} {state}."
    total = format_duration(max(end - start, timedelta(0)))
    if release.state.is_terminal:
        text = f"Ended {state} after {total}"
    else:
        text = f"Still {state} after {total}"
    detection = _detection_to_rollback(ordered)
    if detection is not None:
        text += f"; detection to rollback {format_duration(timedelta(seconds=detection))}"
    return text + "."


def _detection_to_rollback(ordered: list[tuple[datetime, AuditEntry]]) -> float | None:
    """Seconds from the failed gate to the rollback: as recorded, else from the entries."""
    detected = next((at for at, e in ordered if e.action == "gate.failed"), None)
    for at, entry in ordered:
        if entry.action != "release.rolled_back":
            continue
        recorded = _seconds(entry.detail.get("time_to_rollback_s"))
        if recorded is not None:
            return recorded
        if detected is not None and at >= detected:
            return (at - detected).total_seconds()
    return None


def _version_label(release: Release) -> str:
    short = release.version_id[:8]
    return f"{release.version_tag} ({short})" if release.version_tag else short


def _reason(d: dict[str, Any]) -> str:
    reason = d.get("reason")
    return f" ({_value(reason)})" if reason else ""


def _short(value: Any) -> str:
    return _value(value)[:8] if value else ""


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _value(value: Any) -> str:
    """A detail value on one line, clipped."""
    if isinstance(value, float):
        value = round(value, 4)
    return _clip(str(value), _VALUE_MAX)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())  # a newline in a value would break the one-line-per-entry rule
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _maybe_aware(at: datetime | None) -> datetime | None:
    return _aware(at) if at is not None else None
