"""Private answers: errors and the dry run."""

from __future__ import annotations

from bot.engine.freezes import describe
from bot.engine.service import Plan
from bot.slack.blocks.common import Block, context, header, section
from bot.slack.text import mentions as mention


def error(message: str) -> tuple[str, list[Block]]:
    text = f":warning: {message}"
    return text, [section(text)]


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
