"""Did-you-mean for the names the config file defines (services, environments).

A person who types ``tax-apii`` or ``prod`` is told the name they most likely meant. A name
that the typed word begins (``prod`` → ``production``) or that begins with it comes first;
then names that look alike (a typo), best first.

>>> suggest("tax-apii", ["tax-api", "tax-web"])
('tax-api',)
>>> suggest("prod", ["staging", "production"])
('production',)
>>> did_you_mean(("production",))
"; did you mean 'production'?"
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

_PREFIX_MIN = 3  # "p" is no hint of "production"; "pro" is


def suggest(word: str, known: Iterable[str], limit: int = 3) -> tuple[str, ...]:
    """The known names ``word`` most likely meant, best first (empty when none is close)."""
    names = list(dict.fromkeys(known))
    typed = word.strip().lower()
    if not typed:
        return ()
    found: list[str] = [n for n in names if n.lower() == typed]
    if len(typed) >= _PREFIX_MIN:
        found += [
            n
            for n in names
            if n not in found and (n.lower().startswith(typed) or typed.startswith(n.lower()))
        ]
    lowered = {n.lower(): n for n in names}
    for close in difflib.get_close_matches(typed, list(lowered), n=limit, cutoff=0.6):
        if lowered[close] not in found:
            found.append(lowered[close])
    return tuple(found[:limit])


def did_you_mean(names: tuple[str, ...]) -> str:
    """A message tail suggesting ``names``, or "" when there are none."""
    if not names:
        return ""
    return "; did you mean " + " or ".join(f"'{name}'" for name in names) + "?"


def unknown_service(service: str, known: Iterable[str]) -> str:
    """``unknown service 'tax-apii'; did you mean 'tax-api'? (known: tax-api, tax-web)``."""
    names = sorted(known)
    return (
        f"unknown service '{service}'{did_you_mean(suggest(service, names))} "
        f"(known: {', '.join(names)})"
    )
