"""The App Home tab: what is live, what is in flight, what waits for you."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.engine.model import Release
from bot.engine.reading import TargetStatus
from bot.slack import ids
from bot.slack.blocks.card import STATE_LABEL
from bot.slack.blocks.common import Block, button, context, divider, header, section
from bot.slack.blocks.views import chunks, target_line
from bot.slack.text import mention, plain

MAX_HOME_BLOCKS = 100


def _release_row(release: Release, buttons: list[Block], part: str) -> list[Block]:
    label = release.version_tag or release.version_id[:8]
    line = (
        f"*{release.key}* {plain(release.service)} {plain(label)} → "
        f"{plain(release.environment)} · {STATE_LABEL[release.state]} · "
        f"by {mention(release.requested_by)}"
    )
    blocks: list[Block] = [section(line)]
    if buttons and release.id is not None:
        blocks.append(
            {"type": "actions", "block_id": f"home-{part}-{release.id}", "elements": buttons}
        )
    return blocks


def home_view(
    statuses: Sequence[TargetStatus], inflight: Sequence[Release], waiting: Sequence[Release]
) -> dict[str, Any]:
    blocks: list[Block] = [header("Waiting for your approval")]
    if not waiting:
        blocks.append(context("Nothing waits for you."))
    for release in waiting[:15]:
        value = ids.action_value(release.id or 0, release.version_id)
        blocks += _release_row(
            release,
            [
                button("Approve", ids.APPROVE, value, "primary"),
                button("Reject", ids.REJECT, value, "danger"),
            ],
            "waiting",
        )
    blocks += [divider(), header("In flight")]
    if not inflight:
        blocks.append(context("No release is rolling out."))
    for release in inflight[:15]:
        value = ids.action_value(release.id or 0, release.version_id)
        controls = [
            button(
                "Pause" if not release.paused else "Resume",
                ids.PAUSE if not release.paused else ids.RESUME,
                value,
            ),
            button("Roll back", ids.ROLL_BACK, value, "danger"),
        ]
        if release.state.value == "approved":
            controls = []
        blocks += _release_row(release, controls, "inflight")
    blocks += [divider(), header("Live")]
    blocks += [section(chunk) for chunk in chunks([target_line(s) for s in statuses], 2900)]
    if len(blocks) > MAX_HOME_BLOCKS:
        blocks = [*blocks[: MAX_HOME_BLOCKS - 1], context("_more not shown_")]
    return {"type": "home", "blocks": blocks}
