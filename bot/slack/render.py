"""The engine's notices as Slack messages: where each goes and its text, in one place.

Every value from outside (people, Cloudflare, config) goes through :mod:`bot.slack.text`;
mentions are built only from ids. ``render(notice)`` returns the posts a notice makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.engine import notices as n
from bot.engine.drift import Drift
from bot.engine.model import Kind, Release, VersionShare
from bot.engine.rollout import format_rate, gate_summary
from bot.engine.stats import Stats
from bot.engine.timeline import build_timeline
from bot.engine.versions import short_ids
from bot.engine.words import Code, Moment, Person, Words
from bot.slack.blocks.card import restored_to, version_label
from bot.slack.blocks.common import cut_lines
from bot.slack.text import (
    channel,
    code,
    date_token,
    link,
    mention,
    mention_any,
    mentions,
    plain,
    who,
)

TIMELINE_MAX = 3800  # a timeline is cut at a line to fit one message (3,900 characters)

# "card": a line shown on the release's card until the release next changes, not a message
Where = Literal["thread", "channel", "direct", "card"]


@dataclass(frozen=True, slots=True)
class Post:
    where: Where
    text: str
    release: Release | None = None
    user_id: str | None = None  # for a direct message
    # the approval request: posted with Approve/Reject, edited once the release is decided
    asks_approval: bool = False
    # a direct message that points to the release's card, which is in this channel: the
    # notifier ends it with the card's permalink (or names the channel without one)
    card_channel: str | None = None


def words(w: Words) -> str:
    """Engine words as mrkdwn: text escaped, people mentioned, code as code, moments in each
    reader's own time."""
    out = []
    for part in w.parts:
        if isinstance(part, Person):
            out.append(mention_any(part.id))
        elif isinstance(part, Code):
            out.append(code(part.text))
        elif isinstance(part, Moment):
            out.append(date_token(part.at))
        else:
            out.append(plain(part))
    return "".join(out)


def restore_offer(release: Release, command: str) -> str:
    """What ``restore-db`` would do, for a release whose migrations stopped."""
    return (
        f"To put the database back as it was just before {release.key}: "
        f"{code(f'{command} restore-db {release.key}')} (it needs the emergency policy's "
        "approvals). A restore overwrites the whole database in place with the bookmark taken "
        "before the migrations: every write since — the migrations and any data the live "
        "version wrote meanwhile — is lost, and queries running then are cancelled. "
        "Cloudflare allows 10 restores per database every 10 minutes."
    )


def label(release: Release) -> str:
    return plain(release.version_tag) if release.version_tag else code(release.version_id[:8])


def what(release: Release) -> str:
    if release.kind is Kind.RESTORE_DB:
        return (
            f"{release.key} (D1 restore of {plain(release.service)} "
            f"{plain(release.environment)} to {plain(restored_to(release))})"
        )
    return (
        f"{release.key} ({plain(release.service)} {label(release)} → {plain(release.environment)})"
    )


def when(moment: datetime | None) -> str:
    """A moment in each reader's own time (:func:`bot.slack.text.date_token`)."""
    return "an unknown time" if moment is None else date_token(moment)


def split_text(shares: tuple[VersionShare, ...], labels: dict[str, str]) -> str:
    parts = []
    shorts = short_ids(s.version_id for s in shares)
    for share in shares:
        tag = labels.get(share.version_id)
        parts.append(
            code(shorts[share.version_id])
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
        back = expected.split[0].version_id  # whole: a prefix may name two versions by then
        text += (
            f"; {code(f'{command} rollback {drift.service} in {drift.environment} to {back}')}"
            " undoes it"
        )
    return text + "."


def stats_text(stats: Stats) -> str:
    from bot.engine.stats import stats_text as plain_stats

    # The engine's text names the window's end in UTC ("to 2026-12-04 17:00 UTC", no
    # characters to escape); in Slack it is the date token, in the reader's own time.
    utc = stats.until.strftime("%Y-%m-%d %H:%M UTC")  # as the engine writes it
    return plain(plain_stats(stats)).replace(f"(to {utc})", f"(to {date_token(stats.until)})", 1)


def render(notice: n.Notice) -> list[Post]:
    match notice:
        case n.ApprovalRequested(release, approvers, command):
            return [
                Post(
                    "thread",
                    f"Approval needed: {release.approvals_required} of {mentions(approvers)}"
                    f" — use the buttons here or on the card, or "
                    f"{code(f'{command} approve {release.key}')}.",
                    release,
                    asks_approval=True,
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
            stable = (
                version_label(
                    release.stable_version_id, release.stable_version_tag, [release.version_id]
                )
                if release.stable_version_id
                else "the version before it"
            )
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
            line = build_timeline(
                release,
                timeline,
                person=who,
                text=plain,
                moment=lambda at: date_token(at, seconds=True),
            )
            posts.append(Post("thread", cut_lines("Timeline:\n" + line, TIMELINE_MAX), release))
            return posts
        case n.MigrationsStopped(release, why, file, applied, command):
            where = f" in {code(file)}" if file else ""
            text = f":red_circle: {release.key}: the D1 migrations stopped{where}: {plain(why)}."
            if applied:
                text += f"\nApplied before it stopped: {', '.join(code(a) for a in applied)}."
            if release.d1_bookmark:
                text += "\n" + restore_offer(release, command)
            return [Post("thread", text, release), Post("channel", text, release)]
        case n.D1Restored(release, bookmark, previous):
            text = f":floppy_disk: {release.key}: D1 restored to bookmark {code(bookmark)}"
            if previous and previous != bookmark:
                text += f"; to undo, restore {code(previous)} (the database just before)"
            return [Post("thread", text + ".", release)]
        case n.HealthSummary(release, minutes, metrics):
            span = f"after {minutes} min" if minutes >= 1 else "in its first minute"
            head = f":stethoscope: {release.key} health {span} at 100%"
            if metrics is None or metrics.requests == 0:
                text = f"{head}: no requests in that time."
            else:
                text = f"{head}: {metrics.requests:,} requests, {metrics.error_rate:.2%} errors"
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
            if locked_by is not None:
                why = f" ({plain(lock_reason)})" if lock_reason else ""
                line = f":lock: Waits: locked by {mention(locked_by)}{why}; number {place} in line"
            else:
                line = (
                    f":hourglass_flowing_sand: Waits: behind {holder}; number {place} in line"
                    if holder
                    else f":hourglass_flowing_sand: Waits its turn; number {place} in line"
                )
            return [Post("thread", text, release), Post("card", line, release)]
        case n.StartsNow(release, after):
            return [
                Post(
                    "thread",
                    f":arrow_forward: {release.key} starts now: {after} has left "
                    f"{plain(release.target)}.",
                    release,
                )
            ]
        case n.EdgeBusy(release, None):
            return [Post("card", "", release)]  # the wait is over: the line goes
        case n.EdgeBusy(release, until) if until is not None:
            return [
                Post(
                    "card",
                    f":hourglass_flowing_sand: Cloudflare busy, retrying until {when(until)}"
                    " — the release fails safe if it is still busy then.",
                    release,
                )
            ]
        case n.SourceBusy(release, None):
            return [Post("card", "", release)]
        case n.SourceBusy(release, until) if until is not None:
            return [
                Post(
                    "card",
                    f":hourglass_flowing_sand: GitHub asked to wait (rate limit): the checks are "
                    f"read again at {when(until)}; Approve waits for them.",
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
            said = requester_text(release, action)
            if said is None:
                return []
            links = action != "release.succeeded"
            return [
                Post(
                    "direct",
                    said,
                    release,
                    release.requested_by,
                    card_channel=card_channel if links else None,
                )
            ]
    return []


def card_pointer(card_channel: str, permalink: str | None) -> str:
    """The end of a direct message about a release: a link to its card, or where it is."""
    if permalink:
        return f" {link(permalink, 'Open its card')}."
    return f" Its card is in {channel(card_channel)}."


def requester_text(release: Release, action: str) -> str | None:
    """A direct message to the requester (the notifier adds the pointer to the card)."""
    about = what(release)
    outcome = plain(release.outcome or "")
    match action:
        case "release.awaiting_approval":
            return f":raised_hand: {about} needs {release.approvals_required} approvals."
        case "release.approved":
            return f":white_check_mark: {about} is approved."
        case "release.succeeded" if release.kind is Kind.RESTORE_DB:
            return f":large_green_circle: {about} succeeded: the database is restored."
        case "release.succeeded":
            return f":large_green_circle: {about} succeeded: it serves 100%."
        case "release.failed":
            return f":red_circle: {about} failed: {outcome}."
        case "release.rolled_back":
            return f":rewind: {about} was rolled back: {outcome}."
    return None
