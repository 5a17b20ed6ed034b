"""Which stages a release runs, by its kind, in order. Adding a stage means writing it and
listing it here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.engine.model import Kind, Release
from bot.engine.stages.base import Opening, Preflight, TrafficStage
from bot.engine.states import State


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """One kind's stages: those before traffic, then (``openings``, in order) what runs once
    the release holds its environment and before its first traffic step, then for
    each step the one that changes it (``shift``) and the one that judges it (``gate``; the
    last step's is the final verify)."""

    preflight: Sequence[Preflight]
    shift: TrafficStage
    gate: TrafficStage
    openings: Sequence[Opening] = ()

    def names(self, release: Release) -> list[str]:
        """The stages ``release`` goes through, for people and the README."""
        steps = [f"{self.shift.name} {p}% → {self.gate.name}" for p in release.plan]
        openings = [o.name for o in self.openings]
        return [s.name for s in self.preflight] + openings + steps


@dataclass(frozen=True, slots=True)
class Pipeline:
    deploy: Lifecycle
    rollback: Lifecycle
    restore_db: Lifecycle

    def of(self, release: Release) -> Lifecycle:
        if release.kind is Kind.ROLLBACK:
            return self.rollback
        if release.kind is Kind.RESTORE_DB:
            return self.restore_db
        return self.deploy

    def stage(self, release: Release) -> TrafficStage | None:
        """The traffic stage ``release`` is in (None before it starts or after it ended)."""
        life = self.of(release)
        if release.state is State.DEPLOYING:
            for opening in life.openings:
                if opening.due(release):
                    return opening
            return life.shift
        if release.state is State.VERIFYING:
            return life.gate
        return None
