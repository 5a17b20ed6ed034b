"""The release card: one message per release, edited in place as it progresses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from bot.durations import format_duration
from bot.engine.diff import VersionDiff
from bot.engine.model import Kind, Release, StepStatus, Vote
from bot.engine.smoke import SmokeRecord
from bot.engine.sources import VersionSource
from bot.engine.states import State
from bot.engine.versions import short_id
from bot.slack import ids
from bot.slack.blocks.checks import checklist, last_good_line, source_line
from bot.slack.blocks.common import (
    Block,
    button,
    clip,
    confirm_dialog,
    context,
    fields,
    header,
    progress_line,
    section,
    when,
)
from bot.slack.blocks.diff import diff_lines
from bot.slack.blocks.migrations import migration_blocks
from bot.slack.text import code, date_token, link, mention, plain

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


def version_label(version_id: str, tag: str | None, among: Sequence[str | None] = ()) -> str:
    """``v1.4.2 `1a2b3c4d``` as mrkdwn: the tag (from Cloudflare) escaped, then the id as
    code, shortened so that it differs from the ids in ``among`` shown beside it."""
    short = code(short_id(version_id, among))
    return f"{plain(tag)} {short}" if tag else short


DONE, NOW, STOPPED = "✓", "▶", "✗"


def progress(release: Release) -> str:
    """``✓ 10% → ▶ *50%* → 100%``: finished steps ticked, the current one marked and in bold,
    the step a release stopped at crossed; steps not reached are shown as they are."""
    parts = []
    cur = release.current_step
    for i, pct in enumerate(release.plan):
        label = f"{pct}%"
        if release.state is State.SUCCEEDED or (0 <= i < cur):
            label = f"{DONE} {label}"
        elif i == cur and release.state.is_active:
            label = f"{NOW} *{label}*"
        elif i == cur and release.state in (State.ROLLED_BACK, State.FAILED):
            label = f"{STOPPED} {label}"
        parts.append(label)
    return " → ".join(parts)


def state_label(release: Release) -> str:
    """The State field: a rejected release says so rather than "Cancelled"."""
    if release.rejected:
        return ":no_entry_sign: Rejected"
    return STATE_LABEL[release.state]


RESTORE_REASON = "restore D1 to "


def restored_to(release: Release) -> str:
    """What a ``restore-db`` release brings D1 back to ("the bookmark taken before R-3"),
    read from the reason the engine gave it; plain text."""
    reason = release.reason or ""
    if reason.startswith(RESTORE_REASON):
        return reason[len(RESTORE_REASON) :]
    return "a bookmark taken before an earlier release"


def title(release: Release) -> str:
    """The card's header (plain_text: Slack shows it as typed, so its values are not
    escaped). A rollback says it is one, and from which version to which."""
    label = release.version_tag or release.version_id[:8]
    if release.kind is Kind.ROLLBACK:
        start = f" {release.stable_version_id[:8]}" if release.stable_version_id else ""
        text = (
            f"{release.key} · Rollback of {release.service} {release.environment}:{start} → {label}"
        )
    elif release.kind is Kind.RESTORE_DB:
        text = (
            f"{release.key} · D1 restore of {release.service} {release.environment}'s "
            f"database to {restored_to(release)}"
        )
    else:
        text = f"{release.key} · {release.service} {label} → {release.environment}"
    if release.emergency:
        text = f"EMERGENCY {text}"
    if release.paused and release.state.is_active:
        text = f"{text} (paused)"
    return text


def card_text(release: Release) -> str:
    """The notification/fallback text of the card (mrkdwn, so outside values are escaped)."""
    label = release.version_tag or release.version_id[:8]
    state = state_label(release).split(" ", 1)[1]
    if release.kind is Kind.ROLLBACK:
        return (
            f"{release.key} rollback of {plain(release.service)} {plain(release.environment)} "
            f"to {plain(label)}: {state}"
        )
    if release.kind is Kind.RESTORE_DB:
        return (
            f"{release.key} D1 restore of {plain(release.service)} "
            f"{plain(release.environment)} to {plain(restored_to(release))}: {state}"
        )
    return (
        f"{release.key} {plain(release.service)} {plain(label)} → "
        f"{plain(release.environment)}: {state}"
    )


DASHBOARD = (
    "https://dash.cloudflare.com/{account}/workers/services/view/{script}/production/deployments"
)
BAR_CELLS = 10
NEW_CELL, OLD_CELL = "▓", "░"


@dataclass(frozen=True, slots=True)
class CardLive:
    """What the card needs besides the release to show a rollout live: the Cloudflare
    account (for the dashboard link), how long each step of the plan bakes, and now."""

    account_id: str | None = None
    bakes: tuple[timedelta, ...] = ()
    now: datetime | None = None


def dashboard_url(account_id: str, script: str) -> str:
    """The Worker's deployments page in the Cloudflare dashboard."""
    return DASHBOARD.format(account=quote(account_id, safe=""), script=quote(script, safe=""))


def split_bar(percent: float) -> str:
    """``▓░░░░░░░░░ 10 % new``: the share of traffic on the new version, in tenths."""
    filled = min(BAR_CELLS, max(0, round(percent / 100 * BAR_CELLS)))
    if 0 < percent < 100 and filled in (0, BAR_CELLS):
        filled = 1 if filled == 0 else BAR_CELLS - 1  # some, but not all
    return f"`{NEW_CELL * filled}{OLD_CELL * (BAR_CELLS - filled)}` {percent:g} % new"


def ago(moment: datetime, now: datetime) -> str:
    """A Slack date that counts for each viewer ("in 3 minutes", "5 minutes ago"), with
    the span as seen now as its fallback text."""
    delta = moment - now
    fallback = (
        f"in {format_duration(delta)}"
        if delta >= timedelta(0)
        else f"{format_duration(-delta)} ago"
    )
    return f"<!date^{int(moment.timestamp())}^{{ago}}|{fallback}>"


def live_blocks(release: Release, live: CardLive) -> list[Block]:
    """A rolling release's live view: the split bar, the step, when its gate is judged,
    how long it has been running and when it should reach 100 %."""
    if release.state not in (State.DEPLOYING, State.VERIFYING) or len(release.plan) < 2:
        return []
    now = live.now or datetime.now(UTC)
    deployed = [s for s in release.steps if s.deployed_at and s.status is not StepStatus.INTENDED]
    current = deployed[-1] if deployed else None
    share = float(current.percent) if current else 0.0
    stable = (
        f" · {100 - share:g} % {code(short_id(release.stable_version_id, [release.version_id]))}"
        if release.stable_version_id and share < 100
        else ""
    )
    step = max(release.current_step, 0)
    lines = [
        f"{split_bar(share)}{stable}",
        f"*Step {step + 1} of {len(release.plan)}* ({release.plan[step]}%)",
    ]
    gate = None
    if current is not None and current.deployed_at and current.index < len(live.bakes):
        gate = current.deployed_at + live.bakes[current.index]
        if release.paused:
            lines[-1] += " · paused: the gate waits for Resume"
        elif gate > now:
            lines[-1] += f" · next gate {ago(gate, now)}"
        else:
            lines[-1] += " · gate being judged"
    started = release.steps[0].deployed_at if release.steps else None
    times = []
    if started:
        times.append(f"*Elapsed:* {format_duration(now - started)} (started {ago(started, now)})")
    if gate is not None and not release.paused and current is not None:
        rest = sum(live.bakes[current.index + 1 :], timedelta(0))
        eta = max(gate, now) + rest
        times.append(f"*ETA 100 % verified:* {date_token(eta)} ({ago(eta, now)})")
    if times:
        lines.append(" · ".join(times))
    return [section("\n".join(lines))]


def dashboard_line(release: Release, live: CardLive) -> str | None:
    if not live.account_id or release.kind is Kind.RESTORE_DB:  # a restore leaves the Worker
        return None
    url = dashboard_url(live.account_id, release.script)
    return f":cloud: {link(url, f'{release.script} deployments in the Cloudflare dashboard')}"


def release_card(
    release: Release,
    votes: Sequence[Vote] = (),
    note: str | None = None,
    live: CardLive | None = None,
) -> tuple[str, list[Block]]:
    """``(text, blocks)`` for ``chat.postMessage``/``chat.update``; ``note`` is a line of
    mrkdwn (already escaped) about what the release waits for now; ``live`` lets a rolling
    release show its split, gate countdown, elapsed time, ETA and dashboard link."""
    live = live or CardLive()
    if release.kind is Kind.RESTORE_DB:  # no version or traffic changes: a database restore
        facts = [
            ("State", state_label(release)),
            ("Restores", f"D1 to {plain(restored_to(release))}"),
            ("Requested by", mention(release.requested_by)),
            ("Policy", _policy_line(release, votes)),
        ]
    else:
        facts = [
            ("State", state_label(release)),
            (
                "Version",
                version_label(release.version_id, release.version_tag, [release.stable_version_id]),
            ),
            ("Requested by", mention(release.requested_by)),
            (
                "Stable",
                version_label(
                    release.stable_version_id,
                    release.stable_version_tag,
                    [release.version_id],
                )
                if release.stable_version_id
                else "none",
            ),
            ("Strategy", f"{release.strategy.value}: {progress(release)}"),
            ("Policy", _policy_line(release, votes)),
        ]
    blocks: list[Block] = [header(title(release)), fields(facts)]
    blocks += live_blocks(release, live)
    if release.version_message:
        blocks.append(context(f"_{plain(clip(release.version_message, 500))}_"))
    origin = source_line(VersionSource.from_dict(release.source))
    if origin:
        blocks.append(context(origin))
    listed = checklist(release)
    if listed:
        blocks.append(section(clip(listed, 2900)))
    shipping = (
        diff_lines(VersionDiff.from_dict(release.diff)) if release.kind is Kind.DEPLOY else None
    )
    if shipping and not release.state.is_terminal:
        blocks.append(section(clip(shipping, 2900)))
    window = last_good_line(release) if release.state is State.AWAITING_APPROVAL else None
    if window:
        blocks.append(context(window))
    if release.reason and release.kind is not Kind.RESTORE_DB:  # a restore's is in its title
        blocks.append(section(f"*Reason:* {plain(clip(release.reason, 2500))}"))
    blocks += migration_blocks(release)
    smoke = smoke_line(release)
    if smoke:
        blocks.append(context(smoke))
    if release.outcome:
        blocks.append(section(f"*Outcome:* {plain(clip(release.outcome, 2500))}"))
    if note and not release.state.is_terminal:
        blocks.append(context(note))
    actions = _actions(release)
    if actions:
        blocks.append({"type": "actions", "block_id": f"card-{release.id}", "elements": actions})
    dashboard = dashboard_line(release, live)
    if dashboard:
        blocks.append(context(dashboard))
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
            answered = record.answered_by or release.version_id
            who = version_label(
                answered,
                release.version_tag if answered == release.version_id else None,
                [release.stable_version_id],
            )
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
    if release.approvals_required == 0 and release.kind is Kind.ROLLBACK:
        # request_rollback stores a rollback without approvals only where the policy allows
        # one: to a version that served there before (rollback_without_approval, or a policy
        # that needs no approvals at all)
        return (
            f"{plain(release.policy)}: lets a deployer roll back at once to a version that "
            "ran here before"
        )
    if release.approvals_required == 0:
        return f"{plain(release.policy)}: no approval needed"
    return f"{plain(release.policy)}: {progress_line(release, votes)}"


def _actions(release: Release) -> list[Block]:
    if release.id is None:
        return []
    value = ids.action_value(release.id, release.version_id)
    if release.kind is Kind.RESTORE_DB and release.state is not State.AWAITING_APPROVAL:
        return []  # a restore moves no traffic: nothing to promote, pause or roll back
    if release.state is State.AWAITING_APPROVAL:
        return [
            button("Approve", ids.APPROVE, value, "primary"),
            button("Reject", ids.REJECT, value, "danger", reject_confirm(release)),
        ]
    if release.state in (State.DEPLOYING, State.VERIFYING):
        controls = []
        if len(release.plan) > 1 and not release.paused:
            controls.append(
                button("Promote", ids.PROMOTE, value, "primary", _promote_confirm(release))
            )
        if release.paused:
            controls.append(button("Resume", ids.RESUME, value, "primary"))
        else:
            controls.append(button("Pause", ids.PAUSE, value))
        controls.append(
            button("Roll back", ids.ROLL_BACK, value, "danger", _rollback_confirm(release))
        )
        return controls
    return []


def _rollback_confirm(release: Release) -> Block:
    env = plain(release.environment)
    new = version_label(release.version_id, release.version_tag, [release.stable_version_id])
    if release.stable_version_id:
        stable = version_label(
            release.stable_version_id, release.stable_version_tag, [release.version_id]
        )
        back = f"{plain(release.service)} {env} goes back to {stable} at once, at 100 %"
    else:
        back = f"{plain(release.service)} {env} has no stable version to go back to"
    return confirm_dialog(
        f"Roll back {release.key}?",
        f"{back}; {new} stops serving and this release ends as rolled back.",
        "Roll back",
        danger=True,
    )


def _promote_confirm(release: Release) -> Block:
    left = [f"{pct}%" for pct in release.plan[max(release.current_step, 0) + 1 :]]
    skipped = f" ({', '.join(left[:-1])})" if len(left) > 1 else ""
    return confirm_dialog(
        f"Promote {release.key} to 100 %?",
        f"This skips every remaining bake{skipped} and sends 100 % of "
        f"{plain(release.service)} {plain(release.environment)} traffic to "
        f"{version_label(release.version_id, release.version_tag)} now.",
        "Promote to 100 %",
    )


def reject_confirm(release: Release) -> Block:
    if release.kind is Kind.RESTORE_DB:
        return confirm_dialog(
            f"Reject {release.key}?",
            f"The D1 database of {plain(release.service)} {plain(release.environment)} will "
            f"not be restored to {plain(restored_to(release))}; the request ends as rejected.",
            "Reject",
            danger=True,
        )
    return confirm_dialog(
        f"Reject {release.key}?",
        f"{version_label(release.version_id, release.version_tag)} will not be deployed to "
        f"{plain(release.service)} {plain(release.environment)}; the request ends as rejected.",
        "Reject",
        danger=True,
    )
