"""Turning Cloudflare's failures into the engine's errors, in words a person can act on.

Nothing here ever sees the API token or request headers: messages are built only from the
status, Cloudflare's own error codes and messages, and what the bot was doing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from bot.engine.errors import EdgeRejected, EdgeUnavailable

SECRETS_CHANGED = 10220
NOT_FOUND = 10007
AUTH_CODES = frozenset({10000, 9109, 9106, 9103, 10014, 10015, 10023})

_TIMES = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times"}


def times(n: int) -> str:
    """``3`` → ``"three times"``."""
    return _TIMES.get(n, f"{n} times")


def error_items(payload: Any) -> list[tuple[int | None, str]]:
    """``(code, message)`` pairs from a REST failure envelope or a GraphQL ``errors`` list."""
    if not isinstance(payload, dict):
        return []
    raw = payload.get("errors")
    if not isinstance(raw, list):
        return []
    items: list[tuple[int | None, str]] = []
    for entry in raw:
        if isinstance(entry, dict):
            code = entry.get("code")
            message = entry.get("message")
            items.append((code if isinstance(code, int) else None, str(message) if message else ""))
        elif isinstance(entry, str):
            items.append((None, entry))
    return items


def _their_words(items: Sequence[tuple[int | None, str]]) -> str:
    parts = []
    for code, message in items:
        if code is not None and message:
            parts.append(f"{message} (code {code})")
        elif message:
            parts.append(message)
        elif code is not None:
            parts.append(f"code {code}")
    return "; ".join(parts)


def rejection(response: httpx.Response, what: str) -> EdgeRejected:
    """An ``EdgeRejected`` for a refused request (any 4xx, or 200 with ``success: false``)."""
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    items = error_items(payload)
    codes = [code for code, _ in items if code is not None]
    said = _their_words(items)
    cloudflare_said = f" Cloudflare said: {said}." if said else ""

    if SECRETS_CHANGED in codes:
        text = (
            f"Cloudflare refused {what}: secrets changed since that version was uploaded, "
            f"so a forced deployment is needed to use it.{cloudflare_said}"
        )
    elif payload is None:
        # not the API talking (a proxy, a firewall page): no guess about the token
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        text = f"Cloudflare refused {what} with HTTP {status} and a body that is not JSON ({kind})."
    elif status in (401, 403) or AUTH_CODES.intersection(codes):
        text = (
            f"Cloudflare refused {what}: the API token is invalid or lacks permission "
            f"(HTTP {status}).{cloudflare_said}"
        )
    elif NOT_FOUND in codes or status == 404:
        text = f"Cloudflare refused {what}: not found (HTTP {status}).{cloudflare_said}"
    else:
        text = f"Cloudflare refused {what} (HTTP {status}).{cloudflare_said}"
    return EdgeRejected(text, codes=codes, status=status)


def unreadable(what: str, problem: str) -> EdgeUnavailable:
    """A success answer the bot cannot interpret (a changed API, a proxy in the way)."""
    return EdgeUnavailable(f"Cloudflare's answer to {what} could not be read: {problem}")


def _summary(problems: Sequence[str]) -> str:
    if problems and all(p == problems[0] for p in problems):
        return f"Cloudflare {problems[0]} {times(len(problems))}"
    counted: dict[str, int] = {}
    for problem in problems:
        counted[problem] = counted.get(problem, 0) + 1
    if len(problems) <= 5:
        listed = ", ".join(problems)
    else:
        listed = ", ".join(f"{p} ×{n}" for p, n in counted.items())
    return f"Cloudflare failed {times(len(problems))} ({listed})"


def gave_up(problems: Sequence[str], what: str, within: float | None = None) -> EdgeUnavailable:
    """``EdgeUnavailable`` after the retries, e.g. "Cloudflare answered 503 three times in
    42 s while ..."; ``rate_limited`` when every answer was a 429."""
    spent = f" in {within:.0f} s" if within is not None and within >= 1 else ""
    limited = bool(problems) and all(p == "answered 429" for p in problems)
    return EdgeUnavailable(
        f"{_summary(problems)}{spent} while {what}; giving up for now", rate_limited=limited
    )
