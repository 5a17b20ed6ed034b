"""Block Kit to readable terminal text, for the offline console."""

from __future__ import annotations

import re
from typing import Any

from bot.dev.web_mrkdwn import channel_name, relative_time

_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>")
_SUBTEAM = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_DATE = re.compile(r"<!date\^(\d+)\^([^|>]*)\|([^>]*)>")
_LINK = re.compile(r"<(https?://[^|>]+)(?:\|([^>]*))?>")


def _date(match: re.Match[str]) -> str:
    """A date token as its fallback text; ``{ago}`` counted from now, as Slack shows it."""
    if match.group(2) == "{ago}":
        return relative_time(int(match.group(1)))
    return match.group(3)


def plain(text: str, users: dict[str, dict[str, Any]]) -> str:
    """Slack mrkdwn references made readable: ``<@U1>`` → ``@alice``, dates to their text."""
    text = _USER.sub(lambda m: "@" + str(users.get(m.group(1), {}).get("name") or m.group(1)), text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or channel_name(m.group(1))), text)
    text = _SUBTEAM.sub(lambda m: m.group(2) or "@" + channel_name(m.group(1)), text)
    text = _SPECIAL.sub(lambda m: "@" + m.group(1), text)
    text = _DATE.sub(_date, text)
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_blocks(blocks: list[dict[str, Any]], users: dict[str, dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"┃ {block['text']['text']}")
        elif kind == "section":
            if "text" in block:
                lines.extend(plain(block["text"]["text"], users).splitlines())
            for f in block.get("fields", []):
                key, _, value = plain(f["text"], users).partition("\n")
                lines.append(f"  {key.strip('*')}: {value}")
        elif kind == "context":
            lines.append(
                "  · " + " ".join(plain(e.get("text", ""), users) for e in block["elements"])
            )
        elif kind == "divider":
            lines.append("  ────────")
        elif kind == "actions":
            labels = [
                f"[{e['text']['text']}]" for e in block["elements"] if e.get("type") == "button"
            ]
            lines.append("  " + " ".join(labels))
        elif kind == "input":
            lines.append(f"  {block.get('label', {}).get('text', 'input')}: ____")
    return lines


def render_message(msg: dict[str, Any], users: dict[str, dict[str, Any]]) -> str:
    body = render_blocks(msg.get("blocks") or [], users) or plain(msg["text"], users).splitlines()
    prefix = "    ↳ " if msg.get("thread_ts") else ""
    marker = " (only visible to you)" if msg.get("ephemeral_for") else ""
    head = f"{prefix}releasebot{marker}:"
    indent = " " * (len(prefix) + 2)
    return "\n".join([head, *(indent + line for line in body)])
