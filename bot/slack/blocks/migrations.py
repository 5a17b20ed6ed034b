"""A deploy's D1 migrations on its card: the pending files with their statements and the
lint's findings, shown before anyone approves, then how each one went. Cut to Slack's limits
(a few files in full, the rest counted and pointed to ``/release migrations``)."""

from __future__ import annotations

from bot.engine.migrations import WHAT_BREAKS, MigrationPlan, PlannedFile
from bot.engine.model import Release
from bot.slack.blocks.common import Block, clip, context, section
from bot.slack.text import code, link, plain

FILES_SHOWN = 4  # files with their statements on the card; each is one section block
SQL_SHOWN = 1500  # characters of a file's SQL in its section (a section holds 3,000)
FINDINGS_SHOWN = 5

ICON = {
    "pending": ":hourglass_flowing_sand:",
    "sent": ":arrow_forward:",
    "applied": ":white_check_mark:",
    "found": ":ballot_box_with_check:",
    "failed": ":x:",
}
KIND_LABEL = {
    "drop_table": "DROP TABLE",
    "drop_column": "DROP COLUMN",
    "rename": "RENAME",
    "not_null_without_default": "NOT NULL without DEFAULT",
    "type_change": "type change",
    "unparsable": "not readable by the lint",
}


def migration_blocks(release: Release, command: str = "/release") -> list[Block]:
    plan = MigrationPlan.from_dict(release.migrations)
    if plan is None or not plan.files:
        return []
    blocks: list[Block] = [section(_headline(plan))]
    for planned in plan.files[:FILES_SHOWN]:
        blocks.append(section(_file_text(planned)))
    more = len(plan.files) - FILES_SHOWN
    if more > 0:
        listing = code(f"{command} migrations {release.service} {release.environment}")
        blocks.append(context(f"and {more} more file(s): {listing} lists them all"))
    if plan.checks:
        failed = [c for c in plan.checks if not c.get("ok")]
        line = (
            f":white_check_mark: {len(plan.checks)} check(s) after the migrations passed"
            if not failed
            else f":x: check {code(failed[0].get('sql'))} expected "
            f"{code(failed[0].get('expected'))}, got {code(failed[0].get('got'))}"
        )
        blocks.append(context(line))
    return blocks


def _headline(plan: MigrationPlan) -> str:
    count = len(plan.files)
    findings = plan.findings
    text = f"*D1 migrations:* {count} file(s) to apply, one at a time, before any traffic moves"
    if plan.status == "validated":
        text = f"*D1 migrations:* {count} file(s) applied and validated"
    elif plan.status in ("failed", "invalid"):
        text = "*D1 migrations:* stopped; see the thread"
    if findings:
        text += (
            f"\n:warning: The lint flags {len(findings)} statement(s) that break the version "
            "running now (it keeps serving until the new one takes all traffic, and comes back "
            "on a rollback): approving needs the emergency policy's approvals as well."
        )
    return text


def _file_text(planned: PlannedFile) -> str:
    name = link(planned.url, planned.name) if planned.url else code(planned.name)
    lines = [f"{ICON[planned.status]} {name} · sha256 {code(planned.sha256[:12])}"]
    for finding in planned.findings[:FINDINGS_SHOWN]:
        lines.append(
            f":warning: *{KIND_LABEL.get(finding.kind, plain(finding.kind))}:* "
            f"{plain(finding.detail)} — {WHAT_BREAKS.get(finding.kind, '')}"
        )
    if len(planned.findings) > FINDINGS_SHOWN:
        lines.append(f"and {len(planned.findings) - FINDINGS_SHOWN} more finding(s)")
    if planned.status == "found":
        lines.append(
            "found applied in `d1_migrations` outside this release (wrangler or another "
            "tool): not counted as tested here"
        )
    if planned.error:
        lines.append(f":x: {plain(clip(planned.error, 500))}")
    sql = clip(plain(planned.sql).replace("```", "'''"), SQL_SHOWN)
    if sql.strip():
        lines.append(f"```{sql}```")
    return "\n".join(lines)
