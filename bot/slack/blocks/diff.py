"""The diff card: what ships between the live version and the candidate, as mrkdwn."""

from __future__ import annotations

from bot.engine.diff import Change, VersionDiff
from bot.engine.model import Binding
from bot.engine.versions import short_ids
from bot.slack.blocks.common import clip
from bot.slack.text import code, link, plain

MIGRATION_WARNING = (
    ":warning: *Durable Object migration* {change}: this release goes out all at once (no "
    "gradual rollout), and a rollback to the live version will be refused afterwards."
)


def _binding(b: Binding) -> str:
    return f"{code(b.name)} ({plain(b.type)})"


def _change(c: Change) -> str:
    return f"{plain(c.before or 'none')} → {plain(c.after or 'none')}"


def _count(n: int) -> str:
    return f"{n} commit" if n == 1 else f"{n} commits"


COMMITS_ROOM = 2800  # the card clips the diff's section at 2,900 characters
NAMES_SHOWN = 12  # bindings, secrets or flags named on one line; the rest are counted
CHANGES_SHOWN = 8  # changed bindings, a line each


def _names(parts: list[str]) -> str:
    shown = ", ".join(parts[:NAMES_SHOWN])
    more = len(parts) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def diff_lines(diff: VersionDiff | None) -> str | None:
    """The diff as mrkdwn lines (escaped), or None when there is nothing live to compare."""
    if diff is None or diff.live_id is None:
        return None
    short = short_ids([diff.live_id, diff.candidate_id])
    live, candidate = code(short[diff.live_id]), code(short[diff.candidate_id])
    lines = [f"*What ships* (live {live} → {candidate})"]
    # what approvers must not miss comes first; every list is capped, so none is cut off
    if diff.downgrade:
        lines.append(f":arrow_down: *Downgrade:* {plain(diff.downgrade)}")
    if diff.commits_behind and not diff.commits_unknown:
        lines.append(
            f":arrow_down: {_count(diff.commits_behind)} live has that the candidate lacks: "
            "this release takes them out"
        )
    if diff.migration and diff.migration_tag is not None:
        lines.append(MIGRATION_WARNING.format(change=_change(diff.migration_tag)))
    if diff.secrets_added:
        lines.append("+ Secrets added: " + _names([code(n) for n in diff.secrets_added]))
    if diff.secrets_removed:
        lines.append("− Secrets removed: " + _names([code(n) for n in diff.secrets_removed]))
    if diff.bindings_added:
        lines.append("+ Bindings added: " + _names([_binding(b) for b in diff.bindings_added]))
    if diff.bindings_removed:
        lines.append("− Bindings removed: " + _names([_binding(b) for b in diff.bindings_removed]))
    for c in diff.bindings_changed[:CHANGES_SHOWN]:
        lines.append(f"~ Binding {code(c.name)}: {_binding(c.before)} → {_binding(c.after)}")
    if len(diff.bindings_changed) > CHANGES_SHOWN:
        lines.append(f"~ and {len(diff.bindings_changed) - CHANGES_SHOWN} more bindings changed")
    if diff.compatibility_date is not None:
        lines.append(f"~ Compatibility date: {_change(diff.compatibility_date)}")
    if diff.flags_added or diff.flags_removed:
        parts = [f"+{plain(f)}" for f in diff.flags_added] + [
            f"−{plain(f)}" for f in diff.flags_removed
        ]
        lines.append("~ Compatibility flags: " + _names(parts))
    if diff.usage_model is not None:
        lines.append(f"~ Usage model: {_change(diff.usage_model)}")
    if diff.runtime_unknown:
        lines.append(f":grey_question: Cloudflare: {plain(diff.runtime_unknown)}")
    elif not (
        diff.bindings_added
        or diff.bindings_removed
        or diff.bindings_changed
        or diff.secrets_added
        or diff.secrets_removed
        or diff.compatibility_date
        or diff.flags_added
        or diff.flags_removed
        or diff.usage_model
        or diff.migration
    ):
        lines.append("No binding, secret or runtime setting changes")
    if diff.commits_unknown:
        lines.append(f":grey_question: Commits: {plain(clip(diff.commits_unknown, 200))}")
    else:
        head = f"*Commits:* {diff.total_commits}"
        if diff.compare_url:
            head = f"*Commits:* {link(diff.compare_url, str(diff.total_commits))}"
        lines.append(head)
        # the list stops where the block would run out of room, so "and N more" always shows
        room = COMMITS_ROOM - sum(len(line) + 1 for line in lines)
        shown = 0
        for commit in diff.commits:
            who = f" — {plain(clip(commit.author, 60))}" if commit.author else ""
            title = plain(clip(commit.title, 120))
            sha = link(commit.url, commit.sha[:7]) if commit.url else code(commit.sha[:7])
            line = f"• {sha} {title}{who}"
            if len(line) + 1 > room:
                break
            lines.append(line)
            room -= len(line) + 1
            shown += 1
        more = diff.more_commits + len(diff.commits) - shown
        if more:
            lines.append(f"and {more} more")
    return "\n".join(lines)
