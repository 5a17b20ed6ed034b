"""The engine's notices as Slack messages: where each goes and its text, in one place.

Every value from outside (people, Cloudflare, config) goes through :mod:`bot.slack.text`;
mentions are built only from ids. ``render(notice)`` returns the posts a notice makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bot.engine import notices as n
from bot.engine.drift import Drift
from bot.engine.model import Release, VersionShare
from bot.engine.rollout import format_rate, gate_summary
from bot.engine.stats import Stats
from bot.engine.timeline import build_timeline
from bot.engine.words import Code, Person, Words
from bot.slack.text import channel, code, mention, mention_any, mentions, plain, who

# "card": a line shown on the release's card until the release next changes, not a message
Where = Literal["thread", "channel", "direct", "card"]


@dataclass(frozen=True, slots=True)
class Post:
    where: Where
    text: str
    release: Release | None = None
    user_id: str | None = None  # for a direct message


def words(w: Words) -> str:
    """Engine words as mrkdwn: text escaped, people mentioned, code as code."""
    out = []
    for part in w.parts:
        if isinstance(part, Person):
            out.append(mention_any(part.id))
        elif isinstance(part, Code):
            out.append(code(part.text))
        else:
            out.append(plain(part))
    return "".join(out)


def label(release: Release) -> str:
    return plain(release.version_tag) if release.version_tag else code(release.version_id[:8])


def what(release: Release) -> str:
    return (
        f"{release.key} ({plain(release.service)} {label(release)} → {plain(release.environment)})"
    )


def clock_time(moment: datetime) -> str:
    """The time of day, in each viewer's own timezone, with a UTC fallback text."""
    fallback = moment.astimezone(UTC).strftime("%H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{time}}|{fallback}>"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def split_text(shares: tuple[VersionShare, ...], labels: dict[str, str]) -> str:
    parts = []
    for share in shares:
        tag = labels.get(share.version_id)
        parts.append(
            code(share.version_id[:8])
            + (f" ({plain(tag)})" if tag else "")
            + f" {share.percentage:g}%"
        )
    return " + ".join(parts)


def drift_text(drift: Drift, labels: dict[str, str], command: str) -> str:
    dep = drift.deployment
    author = plain(dep.author_email) if dep.author_email else "someone unknown"
    how = f" via {plain(dep.source)}" if dep.source else ""
    note = f" (“{plain(dep.message)}”)" if dep.message else ""
    expected = drift.expected
    text = (
        f":warning: *{plain(drift.service)}/{plain(drift.environment)} was changed outside the "
        f"bot*: deployment {code(dep.id[:8])} by {author}{how} at {when(dep.created_on)}{note} "
        f"serves {split_text(dep.versions, labels)}."
    )
    if expected.split:
        text += (
            f" The bot last left {split_text(expected.split, labels)} there "
            f"({plain(expected.release_key)})."
        )
    text += " The next release there starts from what is live now"
    if expected.split and len(expected.split) == 1:
        back = expected.split[0].version_id[:8]
        text += (
            f"; {code(f'{command} rollback {drift.service} in {drift.environment} to {back}')}"
            " undoes it"
        )
    return text + "."


def stats_text(stats: Stats) -> str:
    from bot.engine.stats import stats_text as plain_stats

    return plain(plain_stats(stats))


def render(notice: n.Notice) -> list[Post]:
    match notice:
        case n.ApprovalRequested(release, approvers, command):
            return [
                Post(
                    "thread",
                    f"Approval needed: {release.approvals_required} of {mentions(approvers)}"
                    f" — use the buttons on the card or "
                    f"{code(f'{command} approve {release.key}')}.",
                    release,
                )
            ]
        case n.VoteCounted(release, voter, given, required):
            return [
                Post(
                    "thread",
                    f":white_check_mark: {mention(voter)} approved {release.key} "
                    f"({given} of {required})",
                    release,
                )
            ]
        case n.Rejected(release, by, reason):
            why = f": {plain(reason)}" if reason else ""
            return [Post("thread", f":no_entry_sign: rejected by {mention(by)}{why}", release)]
        case n.Cancelled(release, by):
            return [Post("thread", f":no_entry_sign: cancelled by {mention(by)}", release)]
        case n.Expired(release):
            return [
                Post(
                    "thread",
                    f":alarm_clock: {release.key} expired without enough approvals.",
                    release,
                )
            ]
        case n.Steered(release, by, verb, step_percent):
            if verb == "promote":
                text = f":fast_forward: {mention(by)} ended the bake at {step_percent}%"
            else:
                icon = "pause_button" if verb == "pause" else "arrow_forward"
                text = f":{icon}: {mention(by)} {verb}d {release.key}"
            return [Post("thread", text, release)]
        case n.RollingBack(release, by):
            return [
                Post("thread", f":rewind: {mention(by)} is rolling {release.key} back", release)
            ]
        case n.GateReport(release, percent, verdict):
            icon = {"pass": ":white_check_mark:", "extend": ":hourglass:"}.get(
                verdict.outcome, ":x:"
            )
            return [Post("thread", f"{icon} {plain(gate_summary(percent, verdict))}", release)]
        case n.StoppedBeforeTraffic(release, why):
            return [
                Post(
                    "thread",
                    f":red_circle: {release.key} stopped: {plain(why)}. No user saw it.",
                    release,
                )
            ]
        case n.Failed(release, why):
            return [
                Post("thread", f":red_circle: {release.key} failed: {plain(why)}", release),
                Post(
                    "channel",
                    f":red_circle: {release.key} {plain(release.service)} {label(release)} → "
                    f"{plain(release.environment)} failed: {plain(why)}. "
                    f"{mention(release.requested_by)}",
                    release,
                ),
            ]
        case n.RolledBack(release, why, automatic, people, command, timeline):
            posts = []
            stable = code((release.stable_version_id or "")[:8])
            head = ":rotating_light:" if automatic else ":rewind:"
            text = (
                f"{head} {release.key} {plain(release.service)} {label(release)} → "
                f"{plain(release.environment)} rolled back to {stable}: {plain(why)}."
            )
            if automatic:
                text += f" {mentions(people)}"
            if release.d1_bookmark:
                text += (
                    f"\nThe Worker rollback does not touch D1 data; a bookmark from before "
                    f"{release.key} exists: {code(f'{command} restore-db {release.key}')}."
                )
            posts.append(Post("channel", text, release))
            line = build_timeline(release, timeline, person=who, text=plain)
            posts.append(Post("thread", "Timeline:\n" + line, release))
            return posts
        case n.D1Restored(release, bookmark, previous):
            return [
                Post(
                    "thread",
                    f":floppy_disk: D1 restored to {code(bookmark)}; to undo, the bookmark "
                    f"before the restore was {code(previous)}.",
                    release,
                )
            ]
        case n.HealthSummary(release, minutes, metrics):
            if metrics is None or metrics.requests == 0:
                text = (
                    f":stethoscope: {release.key} health after {minutes} min at 100%: "
                    "no requests yet."
                )
            else:
                text = (
                    f":stethoscope: {release.key} health after {minutes} min at 100%: "
                    f"{metrics.requests:,} requests, {metrics.error_rate:.2%} errors"
                )
                if metrics.cpu_time_p99_us is not None:
                    text += f", CPU p99 {metrics.cpu_time_p99_us / 1000:.1f} ms"
            return [Post("thread", text, release)]
        case n.Resumed(release):
            return [
                Post(
                    "thread",
                    f":arrows_counterclockwise: the bot restarted; {release.key} resumes.",
                    release,
                )
            ]
        case n.DriftPaused(release, drift, labels, command):
            dep = drift.deployment
            author = plain(dep.author_email) if dep.author_email else "someone unknown"
            text = (
                f":warning: {release.key} paused: {plain(release.service)}/"
                f"{plain(release.environment)} was changed outside the bot — deployment "
                f"{code(dep.id[:8])} by {author} serves {split_text(dep.versions, labels)}. "
                "The bot changes nothing there until a person decides: "
                f"{code(f'{command} resume {release.key}')} goes on from what is live now, "
                f"{code(f'{command} rollback {release.service} in {release.environment}')} "
                "puts the stable version back."
            )
            return [Post("thread", text, release), Post("channel", text, release)]
        case n.Waiting(release, locked_by, lock_reason, holder, place):
            if locked_by is not None:
                why = f" ({plain(lock_reason)})" if lock_reason else ""
                text = (
                    f":lock: {release.key} is approved and waits: {plain(release.target)} is "
                    f"locked by {mention(locked_by)}{why}. It starts when the lock is "
                    f"released; it is number {place} in line."
                )
            else:
                busy = f" with {holder}" if holder else ""
                text = (
                    f":hourglass_flowing_sand: {release.key} is approved and waits: "
                    f"{plain(release.target)} is busy{busy}. It is number {place} in line and "
                    "starts by itself when the environment frees."
                )
            return [Post("thread", text, release)]
        case n.EdgeBusy(release, None):
            return [Post("card", "", release)]  # the wait is over: the line goes
        case n.EdgeBusy(release, until) if until is not None:
            return [
                Post(
                    "card",
                    f":hourglass_flowing_sand: Cloudflare busy, retrying until {clock_time(until)}"
                    " — the release fails safe if it is still busy then.",
                    release,
                )
            ]
        case n.SmokeUnconfirmed(release, detail):
            return [
                Post(
                    "thread",
                    f":grey_question: {release.key}: the smoke test could not confirm which "
                    f"version answered ({plain(detail)}).",
                    release,
                )
            ]
        case n.RollbackRequested(service, env, by, version_id, tag, reason):
            text = (
                f":rewind: {mention(by)} is rolling {plain(service)}/{plain(env)} back to "
                f"{code(version_id[:8])}" + (f" ({plain(tag)})" if tag else "")
            )
            if reason:
                text += f": {plain(reason)}"
            return [Post("channel", text)]
        case n.LockChanged(service, env, by, locked, reason, updated, set_by, starts):
            where = f"{plain(service)}/{plain(env)}"
            if locked:
                verb = "updated the lock on" if updated else "locked"
                why = f": {plain(reason)}" if reason else ""
                return [Post("channel", f":lock: {mention(by)} {verb} {where}{why}")]
            text = f":unlock: {mention(by)} released the lock on {where}"
            if set_by:
                text += f" (set by {mention(set_by)})"
            if starts:
                text += f"; {starts} starts now"
            return [Post("channel", text)]
        case n.FreezeChanged(env, by, frozen, until, reason):
            if frozen:
                why = f": {plain(reason)}" if reason else ""
                return [
                    Post(
                        "channel",
                        f":snowflake: {mention(by)} froze {plain(env)} until {when(until)}{why}",
                    )
                ]
            return [Post("channel", f":sunny: {mention(by)} ended the freeze on {plain(env)}")]
        case n.DriftFound(drift, labels, command):
            return [Post("channel", drift_text(drift, labels, command))]
        case n.Digest(policy, since, rows, stats):
            lines = [f"*Health digest* ({plain(policy)}) since {when(since)}"]
            for row in rows:
                head = f"*{plain(row.service)}/{plain(row.environment)}*"
                if row.unreadable is not None:
                    lines.append(f"{head}: :warning: {plain(row.unreadable)}")
                    continue
                live = (
                    " + ".join(
                        code(vid[:8]) + (f" ({plain(tag)})" if tag else "") + f" {pct:g}%"
                        for vid, tag, pct in row.shares
                    )
                    or "nothing deployed"
                )
                if row.analytics_error is not None:
                    numbers = f" · analytics unavailable ({plain(row.analytics_error)})"
                else:
                    numbers = (
                        f" · {row.requests or 0:,} requests, "
                        f"{format_rate(row.error_rate or 0.0, 2)} errors"
                    )
                lines.append(
                    f"{head}: {live}{numbers} · {row.deploys} deploys, {row.rollbacks} rollbacks"
                )
            lines.append(stats_text(stats))
            return [Post("channel", "\n".join(lines))]
        case n.RequesterUpdate(release, action, card_channel):
            said = requester_text(release, action, card_channel)
            return [Post("direct", said, release, release.requested_by)] if said else []
    return []


def requester_text(release: Release, action: str, card_channel: str) -> str | None:
    card = f" Its card is in {channel(card_channel)}."
    about = what(release)
    outcome = plain(release.outcome or "")
    match action:
        case "release.awaiting_approval":
            return f":raised_hand: {about} needs {release.approvals_required} approvals.{card}"
        case "release.approved":
            return f":white_check_mark: {about} is approved.{card}"
        case "release.succeeded":
            return f":large_green_circle: {about} succeeded: it serves 100%."
        case "release.failed":
            return f":red_circle: {about} failed: {outcome}.{card}"
        case "release.rolled_back":
            return f":rewind: {about} was rolled back: {outcome}.{card}"
    return None
