"""Request and envelope rules shared by the client's calls: the deployment split the API
accepts, the message length it allows, reading ``result`` from an envelope, and paging."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from bot.cloudflare.failures import rejection, unreadable
from bot.engine.errors import EdgeRejected, EdgeUnavailable
from bot.engine.model import VersionShare

MESSAGE_MAX = 50  # workers/message maxLength in the API schema
PER_PAGE = 50


def check_split(split: Sequence[VersionShare]) -> tuple[VersionShare, ...]:
    """The rules Cloudflare applies but its schema cannot express, checked before sending:
    one or two distinct versions, each 0 <= p <= 100, together 100 (± 0.001). A version at
    0% is in the deployment without traffic (the smoke test; wrangler sends 0 as given)."""
    shares = tuple(split)
    if len(shares) not in (1, 2):
        raise EdgeRejected(f"a deployment takes one or two versions, not {len(shares)}")
    if len({s.version_id for s in shares}) != len(shares):
        raise EdgeRejected("a deployment cannot name the same version twice")
    for share in shares:
        if not 0 <= share.percentage <= 100:
            raise EdgeRejected(
                f"version {share.version_id[:8]} has {share.percentage:g}%; "
                "each share must be between 0% and 100%"
            )
    total = sum(s.percentage for s in shares)
    if abs(total - 100) > 0.001:
        raise EdgeRejected(f"the percentages add up to {total:g}%, not 100%")
    return shares


def short_message(message: str) -> str:
    """One line, at most ``MESSAGE_MAX`` characters (an ellipsis marks a cut)."""
    message = " ".join(message.split())
    return message if len(message) <= MESSAGE_MAX else message[: MESSAGE_MAX - 1] + "…"


def describe_split(shares: Sequence[VersionShare]) -> str:
    return " + ".join(f"{s.version_id[:8]} at {s.percentage:g}%" for s in shares)


def envelope_result(response: httpx.Response | None, what: str) -> Any:
    """``result`` of a success envelope; ``EdgeRejected`` for a failure envelope."""
    if response is None:  # pragma: no cover - callers pass final responses only
        raise EdgeUnavailable(f"no answer from Cloudflare while {what}")
    if response.status_code >= 400:
        raise rejection(response, what)
    try:
        body = response.json()
    except ValueError as exc:
        raise unreadable(what, "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise unreadable(what, "the body is not an object")
    if body.get("success") is not True:
        raise rejection(response, what)
    return body.get("result")


def more_pages(body: Any, page: int, count: int) -> bool:
    """Whether another page exists: ``result_info`` decides when present, else a full page."""
    info = body.get("result_info") if isinstance(body, dict) else None
    if isinstance(info, dict):
        total, per_page = info.get("total_count"), info.get("per_page")
        if isinstance(total, int) and isinstance(per_page, int) and per_page > 0:
            return page * per_page < total
        total_pages = info.get("total_pages")
        if isinstance(total_pages, int):
            return page < total_pages
    return count >= PER_PAGE
