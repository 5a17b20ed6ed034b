"""Answers about what is live and what happened: status, history, versions, health."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.durations import format_duration
from bot.engine.freezes import describe
from bot.engine.migration_planner import MigrationListing
from bot.engine.model import Deployment, Kind, Release, Vote, WorkerVersion
from bot.engine.quorum import counted as approvals
from bot.engine.reading import Health, LiveSplit, TargetStatus
from bot.engine.sources import VersionSource
from bot.engine.versions import short_ids
from bot.slack.blocks.card import STATE_LABEL, restored_to, version_label
from bot.slack.blocks.common import Block, clip, context, fit, header, progress_line, section, when
from bot.slack.render import words
from bot.slack.text import code, mention, plain

OUTCOME = {
    "succeeded": ":large_green_circle: succeeded",
    "rolled_back": ":rewind: rolled back",
    "failed": ":red_circle: failed",
    "cancelled": ":no_entry_sign: cancelled",
    "rejected": ":no_entry_sign: rejected",
    "expired": ":alarm_clock: expired",
}


def split_line(live: LiveSplit) -> str:
    """``1a2b3c4d (v1.4.2) 90% + 9f8e7d6c (v1.4.1) 10%``."""
    if live.deployment is None:
        return "nothing deployed"
    parts = []
    shorts = short_ids(s.version_id for s in live.deployment.versions)
    for share in live.deployment.versions:
        version = live.versions.get(share.version_id)
        label = code(shorts[share.version_id]) + (
            f" ({plain(version.tag)})" if version and version.tag else ""
        )
        parts.append(f"{label} {share.percentage:g}%")
    return " + ".join(parts)


def _since(status: TargetStatus) -> str:
    dep = status.live.deployment if status.live else None
    if dep is None:
        return ""
    made = status.deployed
    if made is not None:
        who = f"{mention(made.requested_by)} ({made.key})"
    else:
        who = plain(dep.author_email) if dep.author_email else "someone outside the bot"
    text = f" · since {when(dep.created_on)} by {who}"
    restore = status.restored
    if restore is not None and restore.finished_at is not None:
        text += (
            f" · D1 restored by {mention(restore.requested_by)} ({restore.key}) "
            f"{when(restore.finished_at)}"
        )
    return text


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
        extras.append(f":snowflake: {words(describe(status.freeze))}")
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
        outcome = OUTCOME.get(
            "rejected" if release.rejected else release.state.value, STATE_LABEL[release.state]
        )
        took = ""
        if release.finished_at and release.created_at:
            took = f" in {format_duration(release.finished_at - release.created_at)}"
        approvers = ", ".join(mention(v.user_id) for v in approvals(release, votes))
        what = (
            f"D1 restore of {plain(release.environment)} to {plain(restored_to(release))}"
            if release.kind is Kind.RESTORE_DB
            else f"{version_label(release.version_id, release.version_tag)} → "
            f"{plain(release.environment)}"
        )
        line = (
            f"*{release.key}* {what} · {outcome}{took} · {when(release.created_at)} · "
            f"by {mention(release.requested_by)}"
        )
        if approvers:
            line += f" · approved by {approvers}"
        if release.emergency:
            line += " · :rotating_light: EMERGENCY"
        if release.kind is Kind.ROLLBACK:
            line += " · rollback"
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


VERSIONS_SHOWN = 20


def versions_view(
    service: str,
    environment: str,
    versions: Sequence[WorkerVersion],
    active: Deployment | None,
    now: datetime,
    shown: int = VERSIONS_SHOWN,
    sources: Mapping[str, VersionSource] | None = None,
) -> tuple[str, list[Block]]:
    """One line per version (the newest ``shown``): id, tag, message, author, age, live
    share, and where it came from (``sources``: its Workers Build or its annotations)."""
    live = {s.version_id: s.percentage for s in active.versions} if active else {}
    lines = []
    shorts = short_ids(v.id for v in versions[:shown])
    for v in versions[:shown]:
        age = format_duration(now - v.created_on) + " ago" if v.created_on else "age unknown"
        mark = f" · :large_green_circle: *live {live[v.id]:g}%*" if v.id in live else ""
        message = f" — {plain(clip(v.message, 120))}" if v.message else ""
        tag = plain(v.tag) if v.tag else "(no tag)"
        author = plain(v.author_email) if v.author_email else "unknown"
        origin = _origin((sources or {}).get(v.id))
        lines.append(f"{code(shorts[v.id])} {tag}{message} · {author} · {age}{origin}{mark}")
    if not lines:
        lines = ["No versions uploaded."]
    blocks: list[Block] = [header(f"Versions: {service} / {environment}")]
    blocks += [section(chunk) for chunk in chunks(lines, 2900)]
    if len(versions) > shown:
        blocks.append(context(f"{len(versions) - shown} older versions not shown"))
    return clip("\n".join(lines), 3000), fit(blocks)


def _origin(source: VersionSource | None) -> str:
    """`` · from `9f8e7d6` on main (build fail)``, `` · secret change``, or nothing."""
    if source is None:
        return ""
    if source.from_build:
        branch = f" on {plain(source.branch)}" if source.branch else ""
        outcome = source.build_outcome or "running"
        build = "" if outcome == "success" else f" (build {plain(outcome)})"
        return f" · from {code((source.commit_sha or '?')[:7])}{branch}{build}"
    if source.secret_change:
        return " · secret change"
    return ""


def migrations_view(listing: MigrationListing, shown: int = 40) -> tuple[str, list[Block]]:
    """``/release migrations``: what ``d1_migrations`` holds, newest last, and what is pending."""
    applied = [
        f":white_check_mark: {code(a.name)} · applied {plain(a.applied_at)}"
        for a in listing.applied[-shown:]
    ]
    pending = [
        f":hourglass_flowing_sand: {code(p.name)} · sha256 {code(p.sha256[:12])}"
        for p in listing.pending[:shown]
    ]
    lines = [f"*Applied* ({len(listing.applied)}, from d1_migrations):"]
    if len(listing.applied) > shown:
        lines.append(f"_{len(listing.applied) - shown} older ones not shown_")
    lines += applied or ["none"]
    lines.append(f"*Pending* ({len(listing.pending)}, applied by the next deploy):")
    lines += pending or ["none: the database has every migration file"]
    if len(listing.pending) > shown:
        lines.append(f"_{len(listing.pending) - shown} more not shown_")
    blocks: list[Block] = [
        header(f"Migrations: {listing.service} / {listing.environment}"),
        *[section(chunk) for chunk in chunks(lines, 2900)],
        context(f"D1 database {code(listing.database_id)}"),
    ]
    return clip("\n".join(lines), 3000), fit(blocks)


def health_view(h: Health) -> tuple[str, list[Block]]:
    live = h.live
    lines = [f"*Live:* {split_line(live)}"]
    shares = live.deployment.versions if live.deployment else ()
    shorts = short_ids(s.version_id for s in shares)
    for share in shares:
        m = h.metrics.get(share.version_id)
        version = live.versions.get(share.version_id)
        label = code(shorts[share.version_id]) + (
            f" ({plain(version.tag)})" if version and version.tag else ""
        )
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
