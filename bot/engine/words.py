"""Text the engine hands out, as plain data: words, the people they name, code they quote.

The engine never writes Slack markup. A refusal or an outcome that names a person holds that
person's id as a :class:`Person`; whoever shows it (``bot.slack`` for Slack) renders it — a
mention there, the bare id in the audit trail::

    w = words("only ", people(["U0ALICE", "S0OPS"]), " may deploy under ", Code("production"))
    str(w)   # 'only U0ALICE, S0OPS may deploy under production'

A moment is a :class:`Moment`: Slack shows it in each reader's own time, plain text in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Person:
    """A Slack user (``U…``/``W…``) or user group (``S…``) id from config or from Slack."""

    id: str


@dataclass(frozen=True, slots=True)
class Code:
    """A value shown as code: a version id, a command, a deployment id."""

    text: str


@dataclass(frozen=True, slots=True)
class Moment:
    """A point in time; as plain text ``2026-12-05 00:00 UTC``."""

    at: datetime

    def __str__(self) -> str:
        at = self.at if self.at.tzinfo is not None else self.at.replace(tzinfo=UTC)
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


Part = str | Person | Code | Moment


@dataclass(frozen=True, slots=True)
class Words:
    parts: tuple[Part, ...]

    def __str__(self) -> str:
        return "".join(
            p
            if isinstance(p, str)
            else p.id
            if isinstance(p, Person)
            else p.text
            if isinstance(p, Code)
            else str(p)
            for p in self.parts
        )

    def __add__(self, other: Words | str) -> Words:
        tail = other.parts if isinstance(other, Words) else (other,)
        return Words(self.parts + tail)


def words(*parts: Part | Words | Iterable[Part]) -> Words:
    """Words from strings, people, code and other words (nested iterables are flattened)."""
    flat: list[Part] = []
    for part in parts:
        if isinstance(part, str | Person | Code | Moment):
            flat.append(part)
        elif isinstance(part, Words):
            flat.extend(part.parts)
        else:
            flat.extend(part)
    return Words(tuple(flat))


def people(ids: Iterable[str]) -> Words:
    """``A, B, C`` as people."""
    out: list[Part] = []
    for i, person in enumerate(ids):
        if i:
            out.append(", ")
        out.append(Person(person))
    return Words(tuple(out))
