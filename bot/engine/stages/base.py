"""What a stage is and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.engine.model import Release, Step


@dataclass(frozen=True, slots=True)
class Passed:
    """The stage is done; ``changes`` (release fields) and ``detail`` (for the audit record
    of the start) are stored when the release starts."""

    changes: dict[str, object] = field(default_factory=dict)
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Hold:
    """Not now (a lock, another release there): the release waits; nothing is stored."""

    why: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The release cannot go on; it fails before any traffic reached the new version."""

    why: str


PreflightResult = Passed | Hold | Stop


class Preflight(Protocol):
    """A stage before any traffic moves."""

    name: str

    async def run(self, release: Release) -> PreflightResult: ...


class TrafficStage(Protocol):
    """A stage while the release holds its environment: one step of the plan, deployed or
    judged. True when the release can go on at once, False when it waits or ended."""

    name: str

    async def run(self, release: Release, step: Step) -> bool: ...


class Opening(TrafficStage, Protocol):
    """A stage the release runs once it holds its environment, before its first step
    changes traffic (the smoke test), for as long as it is ``due``."""

    def due(self, release: Release) -> bool: ...
