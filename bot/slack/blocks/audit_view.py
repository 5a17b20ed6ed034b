"""``/release audit``: one page of the audit trail, most recent first, for one person.

Each record is one line::

    #42 · Nov 26 12:00 · `R-3` tax-api/staging · release.started (approved → deploying) · releasebot

The footer says which records these are and how to see the ones before (and after) them, as
commands to type: ``older: /release audit tax-api --since 2026-11-20T09:14:03.120000Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.slack.blocks.common import Block, clip, context, fit, header, section, when
from bot.slack.text import code, plain, who

PAGE_SIZE = 20
DETAIL_MAX = 90
# Keys of a record's detail worth a few words on its line, in order of preference.
_DETAIL_KEYS = ("reason", "outcome", "what", "step_percent", "author_email", "until")


def since_arg(moment: datetime) -> str:
    """A time as ``--since`` reads it back exactly (UTC, to the microsecond)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _detail(detail: Any) -> str:
    if not isinstance(detail, dict):
        return ""
    for key in _DETAIL_KEYS:
        value = detail.get(key)
        if value not in (None, ""):
            if key == "until" and isinstance(value, str):
                try:  # a freeze's end, stored as ISO 8601: shown in the reader's time
                    return " — until " + when(datetime.fromisoformat(value))
                except ValueError:
                    pass
            shown = f"{value}%" if key == "step_percent" else str(value)
            return " — " + plain(clip(shown, DETAIL_MAX))
    return ""


def record_line(record: dict[str, Any]) -> str:
    """One record, with its chain position (``#seq``) and time in the reader's timezone."""
    parts = [f"#{record['seq']}", when(record["at"])]
    target = ""
    if record.get("release_key"):
        target = f"{code(record['release_key'])} "
    if record.get("service"):
        target += plain(f"{record['service']}/{record.get('environment') or '*'}")
    elif record.get("environment"):
        target += plain(record["environment"])
    if target:
        parts.append(target.strip())
    action = plain(record["action"])
    if record.get("before") and record.get("after"):
        action += f" ({plain(record['before'])} → {plain(record['after'])})"
    parts.append(action + _detail(record.get("detail")))
    parts.append(who(str(record.get("actor") or "")))
    return " · ".join(parts)


def audit_page(
    records: list[dict[str, Any]],
    command: str,
    service: str | None,
    since: datetime | None = None,
    older: datetime | None = None,
    newer: datetime | None = None,
) -> tuple[str, list[Block]]:
    """The page (``records`` newest first). ``older``/``newer``: the ``--since`` that shows
    the page before/after this one, when there is one."""
    title = f"Audit trail · {service}" if service else "Audit trail"  # the plain_text header
    blocks: list[Block] = [header(title)]
    if not records:
        where = f" for {plain(service)}" if service else ""
        from_ = f" since {when(since)}" if since else ""
        text = f"No audit records{where}{from_}."
        blocks.append(section(text))
        return text, blocks
    lines = [record_line(r) for r in records]
    chunk: list[str] = []
    for line in lines:
        if chunk and len("\n".join([*chunk, line])) > 2900:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    first, last = records[-1]["seq"], records[0]["seq"]
    notes = [f"Records #{first}–#{last}, most recent first."]
    target = f" {service}" if service else ""
    if older is not None:
        notes.append(f"older: {code(f'{command} audit{target} --since {since_arg(older)}')}")
    if newer is not None:
        notes.append(f"newer: {code(f'{command} audit{target} --since {since_arg(newer)}')}")
    blocks.append(context(*notes))
    text = "\n".join([plain(title), *lines, *notes])
    return clip(text, 3000), fit(blocks)
