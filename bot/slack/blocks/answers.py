"""Private answers: status, errors, confirmations."""

from __future__ import annotations

from bot.engine.freezes import describe
from bot.engine.model import Release
from bot.engine.policies import mention
from bot.engine.service import LiveSplit, Plan
from bot.slack.blocks.card import STATE_LABEL
from bot.slack.blocks.common import Block, context, fit, header, section, when


def split_line(live: LiveSplit) -> str:
    """``1a2b3c4d (v1.4.2) 90% + 9f8e7d6c (v1.4.1) 10%``."""
    if live.deployment is None:
        return "nothing deployed"
    parts = []
    for share in live.deployment.versions:
        tag = live.versions.get(share.version_id)
        label = f"`{share.version_id[:8]}`" + (f" ({tag.tag})" if tag and tag.tag else "")
        parts.append(f"{label} {share.percentage:g}%")
    return " + ".join(parts)


def status_overview(
    rows: list[tuple[LiveSplit | str, Release | None]], targets: list[tuple[str, str]]
) -> tuple[str, list[Block]]:
    """Every service × environment: the live split (or why it could not be read) and any
    release in flight."""
    blocks: list[Block] = [header("Release status")]
    lines = []
    for (service, env), (live, inflight) in zip(targets, rows, strict=True):
        shown = split_line(live) if isinstance(live, LiveSplit) else f":warning: {live}"
        line = f"*{service}/{env}*: {shown}"
        if live and isinstance(live, LiveSplit) and live.deployment:
            dep = live.deployment
            by = f" by {dep.author_email}" if dep.author_email else ""
            line += f" · since {when(dep.created_on)}{by}"
        if inflight is not None:
            line += f"\n      {inflight.key} {STATE_LABEL[inflight.state]}"
            if inflight.current_step >= 0:
                line += f" at {inflight.plan[inflight.current_step]}%"
        lines.append(line)
    for chunk in _chunks(lines, 2900):
        blocks.append(section(chunk))
    text = "\n".join(lines)
    return text[:3000], fit(blocks)


def status_detail(live: LiveSplit, inflight: Release | None) -> tuple[str, list[Block]]:
    text = f"{live.service}/{live.environment} ({live.script}): {split_line(live)}"
    blocks: list[Block] = [header(f"{live.service} / {live.environment}"), section(text)]
    if live.deployment is not None:
        dep = live.deployment
        meta = [f"deployment `{dep.id[:8]}` since {when(dep.created_on)}"]
        if dep.author_email:
            meta.append(f"by {dep.author_email}")
        if dep.message:
            meta.append(f"“{dep.message}”")
        blocks.append(context(" · ".join(meta)))
    if inflight is not None:
        step = f" at {inflight.plan[inflight.current_step]}%" if inflight.current_step >= 0 else ""
        blocks.append(section(f"In flight: *{inflight.key}* {STATE_LABEL[inflight.state]}{step}"))
    return text, blocks


def error(message: str) -> tuple[str, list[Block]]:
    text = f":warning: {message}"
    return text, [section(text)]


def _chunks(lines: list[str], limit: int) -> list[str]:
    chunks: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + len(line) + 1 > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def plan(report: Plan, command: str) -> tuple[str, list[Block]]:
    """The dry run: what ``deploy`` would need and do; nothing was changed."""
    r = report.release
    label = f"`{r.version_id[:8]}`" + (f" ({r.version_tag})" if r.version_tag else "")
    lines = [
        f"*Version:* {label}" + (f" — {r.version_message}" if r.version_message else ""),
        f"*Replaces:* `{r.stable_version_id[:8]}`"
        if r.stable_version_id
        else "*Replaces:* nothing",
        f"*Policy:* {r.policy}: "
        + (
            f"{r.approvals_required} approvals from {mention(report.approvers)}"
            if r.approvals_required
            else "no approval needed"
        ),
        "*Who may deploy:* "
        + ("everyone" if report.deployers is None else mention(report.deployers))
        + (f" — :no_entry: {report.may_deploy}" if report.may_deploy else " — you may"),
    ]
    steps = " → ".join(f"{p}%" for p in r.plan)
    gate = ""
    if report.rollout is not None and len(r.plan) > 1:
        ro = report.rollout
        gate = (
            f"; each step bakes {int(ro.bake.total_seconds())}s, then the gate: error rate ≤ "
            f"{ro.max_error_rate:.1%} and ≤ {ro.max_error_rate_ratio:g}× the stable version's"
        )
    lines.append(f"*Steps:* {r.strategy.value}: {steps}{gate}")
    if report.lock:
        why = f": {report.lock.reason}" if report.lock.reason else ""
        lines.append(f":lock: *Locked* by <@{report.lock.locked_by}>{why}")
    if report.freeze:
        lines.append(f":snowflake: *Frozen* — {describe(report.freeze)}")
    if report.progression:
        lines.append(f":no_entry: {report.progression}")
    if report.holder or report.queue_ahead:
        ahead = len(report.queue_ahead) + (1 if report.holder else 0)
        busy = f" ({report.holder.key} is {report.holder.state.value})" if report.holder else ""
        lines.append(f"*Queue:* {ahead} ahead{busy}")
    else:
        lines.append("*Queue:* the environment is free")
    title = f"Plan: {r.service} {r.version_tag or r.version_id[:8]} → {r.environment}"
    text = "\n".join(lines)
    blocks = [
        header(title),
        section(text),
        context(f"Dry run: nothing was changed. `{command} deploy` does it."),
    ]
    return f"{title}\n{text}", blocks
