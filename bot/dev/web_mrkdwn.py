"""Slack mrkdwn to safe HTML, for the browser console.

Covers what the bot writes: ``*bold*``, ``_italic_``, ``~strike~``, ```code``` spans and blocks,
``> quotes``, ``<@U…>`` mentions, ``<#C…>`` channels, ``<!date^…|fallback>`` dates (shown in
the viewer's timezone), ``<https://…|links>``, ``<!here>``-style specials and Slack's emoji
shortcodes (``bot/dev/emoji.py``). Everything that is not markup is HTML-escaped, so message
text can never inject markup into the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.dev.emoji import EMOJI

Users = Mapping[str, Mapping[str, Any]]


_CODE_BLOCK = re.compile(r"```(.+?)```", re.S)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_CONTROL = re.compile(r"<([^<>\n]+)>")
_HOLE = re.compile(r"\x00(\d+)\x00")
_EMOJI = re.compile(r":([a-z0-9_+\-]+):")
_BOLD = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])")
_DATE_TOKEN = re.compile(r"\{(\w+)\}")


def emoji(text: str) -> str:
    """``:rocket:`` → 🚀 for the known shortcodes; unknown ones stay as typed."""
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def unescape_slack(text: str) -> str:
    """Slack's three escaped characters back to themselves."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def user_name(users: Users, user_id: str) -> str:
    return str(users.get(user_id, {}).get("name", user_id))


def channel_name(channel_id: str) -> str:
    """A readable name for a channel or user-group id: ``C0RELEASES`` → ``releases``."""
    return channel_id[2:].lower() if channel_id[:2] in ("C0", "G0", "S0") else channel_id.lower()


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _clock(moment: datetime, seconds: bool = False) -> str:
    text = moment.strftime("%I:%M:%S %p" if seconds else "%I:%M %p")
    return text.lstrip("0")


def relative_time(epoch: int, now: datetime | None = None) -> str:
    """Slack's ``{ago}``: "in 3m 40s" ahead, "5m 02s ago" behind (the console counts it on)."""
    seconds = epoch - int((now or datetime.now(UTC)).timestamp())
    left = abs(seconds)
    hours, rest = divmod(left, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        text = f"{hours}h {minutes}m"
    elif minutes:
        text = f"{minutes}m {secs:02d}s"
    else:
        text = f"{secs}s"
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def format_date(epoch: int, pattern: str, tz: str, now: datetime | None = None) -> str | None:
    """Slack's ``<!date^epoch^pattern|fallback>`` rendered in ``tz``; None for a pattern token
    it does not know (the caller then shows the fallback text)."""
    try:
        zone: Any = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    moment = datetime.fromtimestamp(epoch, zone)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    relative = {
        today: "Today",
        today - timedelta(days=1): "Yesterday",
        today + timedelta(days=1): "Tomorrow",
    }
    short = moment.strftime("%b ") + str(moment.day)
    tokens: dict[str, Callable[[], str]] = {
        "date_num": lambda: moment.strftime("%Y-%m-%d"),
        "date": lambda: moment.strftime("%B ") + _ordinal(moment.day) + moment.strftime(", %Y"),
        "date_short": lambda: f"{short}, {moment.year}",
        "date_long": lambda: (
            moment.strftime("%A, %B ") + _ordinal(moment.day) + moment.strftime(", %Y")
        ),
        "date_pretty": lambda: (
            relative.get(moment.date())
            or moment.strftime("%B ") + _ordinal(moment.day) + moment.strftime(", %Y")
        ),
        "date_short_pretty": lambda: relative.get(moment.date()) or f"{short}, {moment.year}",
        "date_long_pretty": lambda: (
            relative.get(moment.date())
            or moment.strftime("%A, %B ") + _ordinal(moment.day) + moment.strftime(", %Y")
        ),
        "time": lambda: _clock(moment),
        "time_secs": lambda: _clock(moment, seconds=True),
    }
    tokens["ago"] = lambda: relative_time(epoch, now)
    unknown = [t for t in _DATE_TOKEN.findall(pattern) if t not in tokens]
    if unknown:
        return None
    return _DATE_TOKEN.sub(lambda m: tokens[m.group(1)](), pattern)


class _Renderer:
    """One rendering pass: markup that must not be touched again is parked in ``holes``."""

    def __init__(self, users: Users, tz: str, now: datetime | None) -> None:
        self.users = users
        self.tz = tz
        self.now = now
        self.holes: list[str] = []

    def park(self, fragment: str) -> str:
        self.holes.append(fragment)
        return f"\x00{len(self.holes) - 1}\x00"

    def control(self, inner: str) -> str:
        """The HTML of one ``<…>`` control sequence."""
        body, _, label = inner.partition("|")
        esc = html.escape
        if body.startswith(("@U", "@W")):
            name = label or user_name(self.users, body[1:])
            return f'<span class="mention" data-user="{esc(body[1:])}">@{esc(name)}</span>'
        if body.startswith("#"):
            name = label or channel_name(body[1:])
            return f'<span class="mention channel-mention">#{esc(name)}</span>'
        if body.startswith("!date^"):
            parts = body.split("^")
            shown = None
            if len(parts) >= 3 and parts[1].lstrip("-").isdigit():
                shown = format_date(int(parts[1]), parts[2], self.tz, self.now)
            text = shown or unescape_slack(label) or body
            stamp = ""
            if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
                iso = datetime.fromtimestamp(int(parts[1]), UTC).isoformat()
                stamp = f' datetime="{iso}" title="{esc(unescape_slack(label) or iso)}"'
                if len(parts) >= 3 and parts[2] == "{ago}":
                    stamp += ' data-ago="1"'  # counted on by the page
            return f"<time{stamp}>{esc(text)}</time>"
        if body.startswith("!subteam^"):
            name = label or "@" + channel_name(body[9:])
            return f'<span class="mention">{esc(name)}</span>'
        if body.startswith("!"):
            return f'<span class="mention">@{esc(label or body[1:])}</span>'
        url = unescape_slack(body)
        if url.startswith(("http://", "https://", "mailto:")):
            text = unescape_slack(label) or url
            return f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer">{esc(text)}</a>'
        return esc(unescape_slack(inner))

    def plain(self, text: str) -> str:
        """Text with control sequences made readable but no formatting (for code)."""

        def one(m: re.Match[str]) -> str:
            body, _, label = m.group(1).partition("|")
            if body.startswith(("@U", "@W")):
                return "@" + (label or user_name(self.users, body[1:]))
            if body.startswith("#"):
                return "#" + (label or channel_name(body[1:]))
            return label or body

        return unescape_slack(_CONTROL.sub(one, text))

    def render(self, text: str) -> str:
        text = _CODE_BLOCK.sub(
            lambda m: self.park(f"<pre>{html.escape(self.plain(m.group(1).strip()))}</pre>"),
            text,
        )
        text = _CODE_SPAN.sub(
            lambda m: self.park(f"<code>{html.escape(self.plain(m.group(1)))}</code>"), text
        )
        text = _CONTROL.sub(lambda m: self.park(self.control(m.group(1))), text)
        text = html.escape(unescape_slack(text), quote=False)
        text = _BOLD.sub(r"<b>\1</b>", text)
        text = _ITALIC.sub(r"<i>\1</i>", text)
        text = _STRIKE.sub(r"<s>\1</s>", text)
        text = emoji(text)
        text = self.quotes(text)
        while _HOLE.search(text):
            text = _HOLE.sub(lambda m: self.holes[int(m.group(1))], text)
        return text

    @staticmethod
    def quotes(text: str) -> str:
        """``> line`` runs become blockquotes; other newlines become ``<br>``."""
        parts: list[tuple[bool, str]] = []  # (is a quote, html)
        for line in text.split("\n"):
            if line.startswith("&gt; ") or line == "&gt;":
                if parts and parts[-1][0]:
                    parts[-1] = (True, parts[-1][1] + "<br>" + line[5:])
                else:
                    parts.append((True, line[5:]))
            else:
                parts.append((False, line))
        out = ""
        for i, (quoted, fragment) in enumerate(parts):
            if quoted:
                out += f"<blockquote>{fragment}</blockquote>"
            else:
                out += ("<br>" if i and not parts[i - 1][0] else "") + fragment
        return out


def mrkdwn(text: str, users: Users, tz: str = "UTC", now: datetime | None = None) -> str:
    """Slack mrkdwn as HTML, with dates in ``tz`` (the viewer's timezone)."""
    return _Renderer(users, tz, now).render(text)


def plain_text(text: str, emoji_too: bool = True) -> str:
    """A ``plain_text`` object's text as HTML: escaped, emoji shortcodes converted."""
    escaped = html.escape(text, quote=False)
    return emoji(escaped) if emoji_too else escaped
