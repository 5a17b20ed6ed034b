"""Answers about what is live and what happened: status, history, versions, health."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.durations import format_duration
from bot.engine.freezes import describe
from bot.engine.model import Deployment, Release, Vote, WorkerVersion
from bot.engine.quorum import counted as approvals
from bot.engine.reading import Health, LiveSplit, TargetStatus
from bot.slack.blocks.card import STATE_LABEL
from bot.slack.blocks.common import Block, clip, context, fit, header, progress_line, section, when
from bot.slack.text import code, mention, plain

OUTCOME = {
    "succeeded": ":large_green_circle: succeeded",
    "rolled_back": ":rewind: rolled back",
    "failed": ":red_circle: failed",
    "cancelled": ":no_entry_sign: cancelled",
    "expired": ":alarm_clock: expired",
}


def split_line(live: LiveSplit) -> str:
    """``1a2b3c4d (v1.4.2) 90% + 9f8e7d6c (v1.4.1) 10%``."""
    if live.deployment is None:
        return "nothing deployed"
    parts = []
    for share in live.deployment.versions:
        version = live.versions.get(share.version_id)
        label = code(share.version_id[:8]) + (
            f" ({plain(version.tag)})" if version and version.tag else ""
        )
        parts.append(f"{label} {share.percentage:g}%")
    return " + ".join(parts)


def _since(status: TargetStatus) -> str:
    dep = status.live.deployment if status.live else None
    if dep is None:
        return ""
    last = status.last
    if last is not None and any(s.deployment_id == dep.id for s in last.steps):
        who = f"{mention(last.requested_by)} ({last.key})"
    else:
        who = plain(dep.author_email) if dep.author_email else "someone outside the bot"
    return f" · since {when(dep.created_on)} by {who}"


def _inflight(release: Release) -> str:
    step = f" at {release.plan[release.current_step]}%" if release.current_step >= 0 else ""
    paused = " (paused)" if release.paused else ""
    return f"{release.key} {STATE_LABEL[release.state]}{step}{paused}"


def target_line(status: TargetStatus) -> str:
    shown = split_line(status.live) if status.live else f":warning: {plain(status.error)}"
    line = f"*{plain(status.service)}/{plain(status.environment)}*: {shown}{_since(status)}"
    extras = []
    if status.inflight is not None:
        extras.append(_inflight(status.inflight))
    if status.pending is not None:
        extras.append(f"{status.pending.key} {STATE_LABEL[status.pending.state]}")
    if status.waiting:
        extras.append(f"{len(status.waiting)} waiting")
    if status.lock is not None:
        extras.append(f":lock: locked by {mention(status.lock.locked_by)}")
    if status.freeze is not None:
        extras.append(f":snowflake: {plain(describe(status.freeze))}")
    if extras:
        line += "\n      " + " · ".join(extras)
    return line


def status_overview(statuses: Sequence[TargetStatus]) -> tuple[str, list[Block]]:
    """Every service × environment in one compact view."""
    lines = [target_line(s) for s in statuses]
    blocks: list[Block] = [header("Release status")]
    blocks += [section(chunk) for chunk in chunks(lines, 2900)]
    return clip("\n".join(lines), 3000), fit(blocks, "more services not shown")


def status_detail(status: TargetStatus) -> tuple[str, list[Block]]:
    text = target_line(status)
    blocks: list[Block] = [header(f"{status.service} / {status.environment}"), section(text)]
    dep = status.live.deployment if status.live else None
    if dep is not None:
        source = plain(dep.source) if dep.source else "unknown source"
        meta = [f"deployment {code(dep.id[:8])} · {source}"]
        if dep.message:
            meta.append(f"“{plain(clip(dep.message, 200))}”")
        blocks.append(context(" · ".join(meta)))
    if status.pending is not None:
        blocks.append(
            section(
                f"*Pending approval:* {status.pending.key} — "
                f"{progress_line(status.pending, status.votes)}"
            )
        )
    gate = _last_gate(status.inflight or status.last)
    if gate:
        blocks.append(section(f"*Last gate:* {plain(clip(gate, 2800))}"))
    return text, blocks


def _last_gate(release: Release | None) -> str | None:
    if release is None:
        return None
    for step in reversed(release.steps):
        if step.gate and step.gate.get("summary"):
            return f"{release.key} {step.gate['summary']}"
    return None


def history_view(
    service: str,
    environment: str | None,
    rows: Sequence[tuple[Release, list[Vote]]],
    more: bool,
    command: str,
    limit: int,
) -> tuple[str, list[Block]]:
    where = f"{service}/{environment}" if environment else service  # for the plain_text header
    lines = []
    for release, votes in rows:
        outcome = OUTCOME.get(release.state.value, STATE_LABEL[release.state])
        took = ""
        if release.finished_at and release.created_at:
            took = f" in {format_duration(release.finished_at - release.created_at)}"
        approvers = ", ".join(mention(v.user_id) for v in approvals(release, votes))
        line = (
            f"*{release.key}* {plain(release.version_tag or release.version_id[:8])} → "
            f"{plain(release.environment)} · {outcome}{took} · {when(release.created_at)} · "
            f"by {mention(release.requested_by)}"
        )
        if approvers:
            line += f" · approved by {approvers}"
        if release.emergency:
            line += " · :rotating_light: EMERGENCY"
        if release.kind.value != "deploy":
            line += f" · {release.kind.value.replace('_', ' ')}"
        if release.outcome and release.state.value in ("failed", "rolled_back"):
            line += f"\n      _{plain(clip(release.outcome, 300))}_"
        lines.append(line)
    if not lines:
        lines = [f"No releases of {plain(where)} yet."]
    blocks: list[Block] = [header(f"History: {where}")]
    blocks += [section(chunk) for chunk in chunks(lines, 2900)]
    if more:
        again = (
            f"{command} history {service}"
            f"{' ' + environment if environment else ''} --limit {min(limit * 2, 100)}"
        )
        blocks.append(context(f"Newest {len(rows)} shown; more with {code(again)}"))
    return clip("\n".join(lines), 3000), fit(blocks, "more releases not shown")


def versions_view(
    service: str,
    environment: str,
    versions: Sequence[WorkerVersion],
    active: Deployment | None,
    now: datetime,
    shown: int = 20,
) -> tuple[str, list[Block]]:
    live = {s.version_id: s.percentage for s in active.versions} if active else {}
    lines = []
    for v in versions[:shown]:
        age = format_duration(now - v.created_on) + " ago" if v.created_on else "age unknown"
        mark = f" · :large_green_circle: *live {live[v.id]:g}%*" if v.id in live else ""
        message = f" — {plain(clip(v.message, 120))}" if v.message else ""
        tag = plain(v.tag) if v.tag else "(no tag)"
        author = plain(v.author_email) if v.author_email else "unknown"
        lines.append(f"{code(v.id[:8])} {tag}{message} · {author} · {age}{mark}")
    if not lines:
        lines = ["No versions uploaded."]
    blocks: list[Block] = [header(f"Versions: {service} / {environment}")]
    blocks += [section(chunk) for chunk in chunks(lines, 2900)]
    if len(versions) > shown:
        blocks.append(context(f"{len(versions) - shown} older versions not shown"))
    return clip("\n".join(lines), 3000), fit(blocks)


def health_view(h: Health) -> tuple[str, list[Block]]:
    live = h.live
    lines = [f"*Live:* {split_line(live)}"]
    shares = live.deployment.versions if live.deployment else ()
    for share in shares:
        m = h.metrics.get(share.version_id)
        label = code(share.version_id[:8])
        if m is None:
            lines.append(f"{label}: no requests in the last hour")
            continue
        cpu = ""
        if m.cpu_time_p50_us is not None and m.cpu_time_p99_us is not None:
            p50, p99 = m.cpu_time_p50_us / 1000, m.cpu_time_p99_us / 1000
            cpu = f" · CPU p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        lines.append(
            f"{label}: {m.requests:,} requests, {m.errors:,} errors ({m.error_rate:.2%}){cpu}"
        )
    if h.metrics_error:
        lines.append(f":warning: analytics unavailable: {plain(h.metrics_error)}")
    if h.probe is not None:
        ok, _, detail = h.probe
        lines.append(f"*Probe:* {':white_check_mark:' if ok else ':x:'} {plain(detail)}")
    title = f"Health: {live.service} / {live.environment} (last hour)"  # plain_text header
    text = clip(f"{plain(title)}\n" + "\n".join(lines), 3000)
    return text, [header(title), section("\n".join(lines))]


def chunks(lines: Sequence[str], limit: int) -> list[str]:
    """Lines packed into texts of at most ``limit`` characters (long lines are clipped)."""
    out: list[str] = []
    current = ""
    for line in lines:
        line = clip(line, limit)
        if current and len(current) + len(line) + 1 > limit:
            out.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        out.append(current)
    return out
