"""Private answers: errors and the dry run."""

from __future__ import annotations

from bot.engine.freezes import describe
from bot.engine.service import Plan
from bot.slack.blocks.card import version_label
from bot.slack.blocks.common import Block, clip, context, header, section
from bot.slack.blocks.diff import diff_lines
from bot.slack.render import words
from bot.slack.text import code, mention, mentions, plain


def error(message: str) -> tuple[str, list[Block]]:
    """An answer saying what went wrong; ``message`` is mrkdwn the caller built (an engine
    error's text goes through :func:`bot.slack.text.plain` first)."""
    text = f":warning: {message}"
    return text, [section(text)]


def plan(report: Plan, command: str) -> tuple[str, list[Block]]:
    """The dry run: what ``deploy`` would need and do; nothing was changed."""
    r = report.release
    label = version_label(r.version_id, r.version_tag, [r.stable_version_id])
    lines = [
        f"*Version:* {label}" + (f" — {plain(r.version_message)}" if r.version_message else ""),
        f"*Replaces:* {version_label(r.stable_version_id, r.stable_version_tag, [r.version_id])}"
        if r.stable_version_id
        else "*Replaces:* nothing",
        f"*Policy:* {plain(r.policy)}: "
        + (
            f"{r.approvals_required} approvals from {mentions(report.approvers)}"
            if r.approvals_required
            else "no approval needed"
        ),
        "*Who may deploy:* "
        + ("everyone" if report.deployers is None else mentions(report.deployers))
        + (f" — :no_entry: {plain(report.may_deploy)}" if report.may_deploy else " — you may"),
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
        why = f": {plain(report.lock.reason)}" if report.lock.reason else ""
        lines.append(f":lock: *Locked* by {mention(report.lock.locked_by)}{why}")
    if report.freeze:
        lines.append(f":snowflake: *Frozen* — {words(describe(report.freeze))}")
    if report.progression:
        lines.append(f":no_entry: {plain(report.progression)}")
    if report.migrations is not None and report.migrations.files:
        names = ", ".join(code(f.name) for f in report.migrations.files[:10])
        more = len(report.migrations.files) - 10
        flagged = len(report.migrations.findings)
        lines.append(
            f"*D1 migrations:* {names}"
            + (f" and {more} more" if more > 0 else "")
            + (f" — :warning: {flagged} statement(s) flagged by the lint" if flagged else "")
        )
    if report.holder or report.queue_ahead:
        ahead = len(report.queue_ahead) + (1 if report.holder else 0)
        busy = f" ({report.holder.key} is {report.holder.state.value})" if report.holder else ""
        lines.append(f"*Queue:* {ahead} ahead{busy}")
    else:
        lines.append("*Queue:* the environment is free")
    # The header is plain_text (shown as typed); the message text is mrkdwn (escaped).
    title = f"Plan: {r.service} {r.version_tag or r.version_id[:8]} → {r.environment}"
    text = "\n".join(lines)
    shipping = diff_lines(report.diff)
    blocks = [
        header(title),
        section(text),
        *([section(clip(shipping, 2900))] if shipping else []),
        context(f"Dry run: nothing was changed. {code(f'{command} deploy')} does it."),
    ]
    full = f"{text}\n{shipping}" if shipping else text
    return f"{plain(title)}\n{full}", blocks
