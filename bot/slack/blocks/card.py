"""The release card: one message per release, edited in place as it progresses."""

from __future__ import annotations

from collections.abc import Sequence

from bot.engine.model import Kind, Release, Vote
from bot.engine.smoke import SmokeRecord
from bot.engine.states import State
from bot.slack import ids
from bot.slack.blocks.common import (
    Block,
    button,
    clip,
    context,
    fields,
    header,
    progress_line,
    section,
    when,
)
from bot.slack.text import code, mention, plain

STATE_LABEL = {
    State.REQUESTED: ":hourglass_flowing_sand: Requested",
    State.AWAITING_APPROVAL: ":raised_hand: Awaiting approval",
    State.APPROVED: ":white_check_mark: Approved",
    State.DEPLOYING: ":rocket: Deploying",
    State.VERIFYING: ":mag: Verifying",
    State.SUCCEEDED: ":large_green_circle: Succeeded",
    State.ROLLED_BACK: ":rewind: Rolled back",
    State.FAILED: ":red_circle: Failed",
    State.CANCELLED: ":no_entry_sign: Cancelled",
    State.EXPIRED: ":alarm_clock: Expired",
}


def version_label(version_id: str, tag: str | None) -> str:
    """``1a2b3c4d v1.4.2`` as mrkdwn: the id as code, the tag (from Cloudflare) escaped."""
    return f"{code(version_id[:8])} {plain(tag)}" if tag else code(version_id[:8])


def progress(release: Release) -> str:
    """``10% → *50%* → 100%``: the current step in bold, finished ones struck through."""
    parts = []
    for i, pct in enumerate(release.plan):
        label = f"{pct}%"
        if i == release.current_step and release.state.is_active:
            label = f"*{label}*"
        elif i < release.current_step or (
            i == release.current_step and release.state is State.SUCCEEDED
        ):
            label = f"~{label}~"
        parts.append(label)
    return " → ".join(parts)


def card_text(release: Release) -> str:
    """The notification/fallback text of the card (mrkdwn, so outside values are escaped)."""
    label = release.version_tag or release.version_id[:8]
    state = STATE_LABEL[release.state].split(" ", 1)[1]
    return (
        f"{release.key} {plain(release.service)} {plain(label)} → "
        f"{plain(release.environment)}: {state}"
    )


def release_card(
    release: Release, votes: Sequence[Vote] = (), note: str | None = None
) -> tuple[str, list[Block]]:
    """``(text, blocks)`` for ``chat.postMessage``/``chat.update``; ``note`` is a line of
    mrkdwn (already escaped) about what the release waits for now."""
    # The header is plain_text: Slack shows it as typed, so its values are not escaped.
    label = release.version_tag or release.version_id[:8]
    title = f"{release.key} · {release.service} {label} → {release.environment}"
    if release.emergency:
        title = f"EMERGENCY {title}"
    if release.paused and release.state.is_active:
        title = f"{title} (paused)"
    blocks: list[Block] = [
        header(title),
        fields(
            [
                ("State", STATE_LABEL[release.state]),
                ("Version", version_label(release.version_id, release.version_tag)),
                ("Requested by", mention(release.requested_by)),
                (
                    "Stable",
                    version_label(release.stable_version_id, None)
                    if release.stable_version_id
                    else "none",
                ),
                ("Strategy", f"{release.strategy.value}: {progress(release)}"),
                ("Policy", _policy_line(release, votes)),
            ]
        ),
    ]
    if release.version_message:
        blocks.append(context(f"_{plain(clip(release.version_message, 500))}_"))
    if release.reason:
        blocks.append(section(f"*Reason:* {plain(clip(release.reason, 2500))}"))
    smoke = smoke_line(release)
    if smoke:
        blocks.append(context(smoke))
    if release.outcome:
        blocks.append(section(f"*Outcome:* {plain(clip(release.outcome, 2500))}"))
    if note and release.state.is_active:
        blocks.append(context(note))
    actions = _actions(release)
    if actions:
        blocks.append({"type": "actions", "block_id": f"card-{release.id}", "elements": actions})
    stamp = f"Requested {when(release.created_at)}"
    if release.finished_at:
        stamp += f" · finished {when(release.finished_at)}"
    blocks.append(context(stamp))
    return card_text(release), blocks


def smoke_line(release: Release) -> str | None:
    """How the smoke test went (mrkdwn), or None when the release has none."""
    if release.kind is not Kind.DEPLOY or not release.steps:
        return None
    record = SmokeRecord.of(release.steps[0])
    reason = plain(clip(record.reason or "", 500))
    share = f"{record.share:g}%" if record.share is not None else "0%"
    match record.outcome:
        case "confirmed":
            who = code((record.answered_by or release.version_id)[:8])
            return f":white_check_mark: *Smoke test:* {who} answered its health check at {share}"
        case "unconfirmed":
            return (
                ":grey_question: *Smoke test:* could not confirm the version — the health check "
                f"passed, but {reason}"
            )
        case "skipped":
            return f":fast_forward: *Smoke test:* skipped: {reason}"
        case "failed":
            return f":x: *Smoke test:* failed: {reason}"
    if record.deployment_id is not None:
        return f":hourglass: *Smoke test:* the new version is in the deployment at {share}, probing"
    return None


def _policy_line(release: Release, votes: Sequence[Vote]) -> str:
    if release.approvals_required == 0:
        return f"{plain(release.policy)}: no approval needed"
    return f"{plain(release.policy)}: {progress_line(release, votes)}"


def _actions(release: Release) -> list[Block]:
    if release.id is None:
        return []
    value = ids.action_value(release.id, release.version_id)
    if release.state is State.AWAITING_APPROVAL:
        return [
            button("Approve", ids.APPROVE, value, "primary"),
            button("Reject", ids.REJECT, value, "danger"),
        ]
    if release.state in (State.DEPLOYING, State.VERIFYING):
        controls = []
        if len(release.plan) > 1 and not release.paused:
            controls.append(button("Promote", ids.PROMOTE, value, "primary"))
        if release.paused:
            controls.append(button("Resume", ids.RESUME, value, "primary"))
        else:
            controls.append(button("Pause", ids.PAUSE, value))
        controls.append(button("Roll back", ids.ROLL_BACK, value, "danger"))
        return controls
    return []
