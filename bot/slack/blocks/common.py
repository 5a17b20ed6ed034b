"""Slack's limits, and helpers that keep every block inside them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.engine.model import Release, Vote
from bot.engine.quorum import counted
from bot.slack import text as _text

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_CONTEXT_ELEMENTS = 10

Block = dict[str, Any]


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when cut. A cut never
    leaves half an entity (``&am``) behind: escaped text stays escaped."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&", len(cut) - 4)
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):  # half a date token, mention or link: leave it out whole
        cut = cut[:opened]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= len(cut) - 40 and space > 0:  # end at a word rather than in one
        cut = cut[:space].rstrip()
    return cut + "…"


def cut_lines(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, cut at a line boundary: the lines that fit, then
    ``… and N more lines``. A line is never cut mid-word (nor a date token or a mention
    cut in half); a first line too long alone is clipped at a word."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    kept: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        note = f"… and {len(lines) - i} more lines"
        if size + len(line) + 1 + len(note) + 1 > limit:
            if not kept:
                return clip(line, limit)
            return "\n".join([*kept, note])
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


def header(text: str) -> Block:
    """A header: plain text (nothing to escape), scrubbed of secrets like every other text."""
    shown = clip(_text.scrub(text), MAX_HEADER)
    return {"type": "header", "text": {"type": "plain_text", "text": shown}}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}}


def fields(pairs: list[tuple[str, str]]) -> Block:
    return {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": clip(f"*{k}*\n{v}", MAX_FIELD_TEXT)}
            for k, v in pairs[:MAX_FIELDS]
        ],
    }


def context(*texts: str) -> Block:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": clip(t, MAX_SECTION_TEXT)}
            for t in texts[:MAX_CONTEXT_ELEMENTS]
        ],
    }


def divider() -> Block:
    return {"type": "divider"}


def button(
    text: str,
    action_id: str,
    value: str,
    style: str | None = None,
    confirm: Block | None = None,
) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, MAX_BUTTON_TEXT)},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, yes: str, danger: bool = False) -> Block:
    """A Block Kit ``confirm`` object: Slack asks "are you sure?" before sending the click.
    ``text`` is mrkdwn (outside values already escaped)."""
    dialog: Block = {
        "title": {"type": "plain_text", "text": clip(title, 100)},
        "text": {"type": "mrkdwn", "text": clip(text, 300)},
        "confirm": {"type": "plain_text", "text": clip(yes, 30)},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def when(moment: datetime | None) -> str:
    """A moment in each reader's own time (:func:`bot.slack.text.date_token`), or "—"."""
    return "—" if moment is None else _text.date_token(moment)


def fit(blocks: list[Block], note: str = "more not shown") -> list[Block]:
    """At most 50 blocks; the last one says that something was left out."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], context(f"_{note}_")]


def progress_line(release: Release, votes: Sequence[Vote]) -> str:
    """``1 of 2 approvals: <@U0ALICE>``."""
    given = counted(release, votes)
    names = ", ".join(_text.mention(v.user_id) for v in given)
    line = f"{len(given)} of {release.approvals_required} approvals"
    return f"{line}: {names}" if names else line
