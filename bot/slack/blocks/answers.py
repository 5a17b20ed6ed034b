"""Private answers: status, errors, confirmations."""

from __future__ import annotations

from bot.engine.model import Release
from bot.engine.service import LiveSplit
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
