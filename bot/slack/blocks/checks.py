"""The card's lines about where the version came from and its pre-deploy checklist."""

from __future__ import annotations

from bot.engine.checks import FAILED, PASSED, PENDING, SKIPPED, ChecksReport
from bot.engine.known_good import LastGood
from bot.engine.model import Release
from bot.engine.source import CheckState
from bot.engine.sources import VersionSource
from bot.slack.blocks.common import clip, when
from bot.slack.text import code, link, plain

MARK = {CheckState.SUCCESS: "✓", CheckState.FAILURE: "✗", CheckState.PENDING: "⏳"}
VERDICT = {
    PASSED: ":white_check_mark: *Checks:* all green",
    FAILED: ":x: *Checks:* not passed — Approve is refused",
    PENDING: ":hourglass_flowing_sand: *Checks:* pending — Approve waits for them",
    SKIPPED: ":warning: *Checks:* SKIPPED",
}
MAX_ITEMS = 25
ITEMS_ROOM = 2800  # the card clips the checklist's section at 2,900 characters


def source_line(source: VersionSource | None) -> str | None:
    """``Built from `9f8e7d6` (main, battleborn/tax-api) · PR · build success``, or what the
    annotations say when no Workers Build made the version (mrkdwn, escaped)."""
    if source is None:
        return None
    if source.from_build:
        parts = [f":package: Built from {code((source.commit_sha or '?')[:7])}"]
        where = ", ".join(plain(p) for p in (source.branch, source.repository) if p)
        if where:
            parts[0] += f" ({where})"
        if source.pull_request_url:
            parts.append(link(source.pull_request_url, "pull request"))
        if source.build_outcome:
            parts.append(f"build {plain(source.build_outcome)}")
        else:
            parts.append("build running")
        return " · ".join(parts)
    parts = [":label: Not from Workers Builds"]
    if source.tag:
        parts.append(f"tag {plain(source.tag)}")
    if source.triggered_by:
        parts.append(f"triggered by {plain(source.triggered_by)}")
    return " · ".join(parts)


def checklist(release: Release) -> str | None:
    """The checklist as mrkdwn: a verdict, then one line per check linking its run."""
    report = ChecksReport.from_dict(release.checks)
    if report is None:
        return None
    if report.skipped:
        return f"{VERDICT[SKIPPED]}: {plain(report.skipped)} (recorded in the audit trail)"
    lines = [VERDICT[report.verdict]]
    if report.commit_sha:
        lines[0] += f" for {code(report.commit_sha[:7])}"
    tail: list[str] = []
    if report.waiting_until is not None and report.verdict == PENDING:
        tail.append(f":hourglass: GitHub asked to wait: read again at {when(report.waiting_until)}")
    elif report.error:
        tail.append(f":warning: GitHub: {plain(clip(report.error, 300))}")
    # the list stops where the section would run out of room, so "and N more" and the
    # GitHub line always show
    room = ITEMS_ROOM - sum(len(line) + 1 for line in [*lines, *tail])
    shown = 0
    for item in report.items[:MAX_ITEMS]:
        name = link(item.url, item.name) if item.url else plain(item.name)
        detail = f" — {plain(clip(item.detail, 200))}" if item.detail else ""
        line = f"{MARK[item.state]} {name}{detail}"
        if len(line) + 1 > room:
            break
        lines.append(line)
        room -= len(line) + 1
        shown += 1
    if len(report.items) > shown:
        lines.append(f"and {len(report.items) - shown} more")
    return "\n".join([*lines, *tail])


def last_good_line(release: Release) -> str | None:
    """A warning when the environment's last known good is about to leave the versions
    Cloudflare can deploy (after which a rollback cannot reach it)."""
    found = LastGood.from_dict(release.last_good)
    if found is None or not found.nearly_out:
        return None
    label = code(found.version_id[:8]) + (f" ({plain(found.tag)})" if found.tag else "")
    left = found.uploads_left
    return (
        f":warning: The last known good of {plain(release.target)}, {label}, is number "
        f"{found.position} of the {found.window} versions Cloudflare can still deploy: after "
        f"{left} more upload{'s' if left != 1 else ''} a rollback can no longer reach it."
    )
