"""The one way text from outside becomes Slack mrkdwn.

Everything a person typed, Cloudflare or GitHub answered, or the config file named is data:
it is escaped here (``&``, ``<``, ``>``) and scrubbed of known secrets (and token-shaped
strings) before it reaches a message. Markup the bot means — a mention, a channel link,
inline code, a link — is built only by the helpers below, from values the bot checked
itself::

    f"{mention(user_id)} locked {plain(service)}: {plain(reason)}"

A value that does not look like a Slack id is never turned into a mention; it is shown
escaped instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,30}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,30}$")
_URL = re.compile(r"^https?://[^\s<>|]+$")

_scrub_values: tuple[str, ...] = ()
REDACTED = "[redacted]"

# Credentials by their shape, whoever's they are: Slack tokens (xoxb-, xoxp-, xapp-, ...) and
# a long word after "Bearer" (as an echoed Authorization header shows a token).
_TOKEN_SHAPES = (
    (re.compile(r"\b(?:xox[a-z]|xapp)-[A-Za-z0-9-]{6,}"), REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{16,}"), rf"\1 {REDACTED}"),
)


def set_secrets(values: Iterable[str]) -> None:
    """Values never to show in Slack (tokens, signing secrets); set once at start-up."""
    global _scrub_values
    _scrub_values = tuple(sorted({v for v in values if len(v) >= 6}, key=len, reverse=True))


def scrub(text: str) -> str:
    """``text`` with every known secret, and anything shaped like a token, replaced."""
    for secret in _scrub_values:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for shape, replacement in _TOKEN_SHAPES:
        text = shape.sub(replacement, text)
    return text


def escape(text: str) -> str:
    """Slack's three control characters: ``&``, ``<``, ``>`` (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(value: object) -> str:
    """Any outside value as text that renders as itself: scrubbed, then escaped."""
    return escape(scrub(str(value)))


def code(value: object) -> str:
    """Inline code; backticks inside would end it early, so they become quotes."""
    text = plain(value).replace("`", "'")
    return f"`{text}`" if text else ""


def is_user_id(value: str) -> bool:
    return bool(_USER_ID.fullmatch(value))


def mention(user_id: str) -> str:
    """``<@U…>`` for a user id; anything else is shown as escaped text."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id) else plain(user_id)


def who(actor: str) -> str:
    """The actor of an audit record: a mention for a person, the bot's name as it is."""
    return mention(actor) if _USER_ID.fullmatch(actor) else plain(actor)


def mention_any(entry: str) -> str:
    """A user (``U…``/``W…``) or a user group (``S…``) from a policy's lists."""
    if _GROUP_ID.fullmatch(entry):
        return f"<!subteam^{entry}>"
    return mention(entry)


def mentions(ids: Iterable[str]) -> str:
    return ", ".join(mention_any(i) for i in ids)


def channel(channel_id: str) -> str:
    return f"<#{channel_id}>" if _CHANNEL_ID.fullmatch(channel_id) else plain(channel_id)


def link(url: str, label: str) -> str:
    """``<url|label>`` for an http(s) URL; the label is escaped (and cannot close the link)."""
    if not _URL.fullmatch(url):
        return plain(label)
    return f"<{url}|{plain(label).replace('|', '¦')}>"


def date_token(moment: datetime, *, seconds: bool = False) -> str:
    """A moment as Slack shows dates: in each reader's own timezone, ``Today at 9:30 AM``,
    ``Yesterday at 6:02 PM``, ``Dec 5, 2026 at 12:00 AM``; clients that cannot render it show
    the UTC fallback (``2026-12-05 00:00 UTC``). Every time the bot shows in Slack is written
    this one way. A naive ``moment`` is taken to be UTC.

    >>> date_token(datetime(2026, 12, 5, tzinfo=UTC))
    '<!date^1796428800^{date_short_pretty} at {time}|2026-12-05 00:00 UTC>'
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    clock = "{time_secs}" if seconds else "{time}"
    fallback = utc.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} at {clock}|{fallback}>"
