"""Drift: a deployment on Cloudflare that the bot did not make (wrangler by hand, the
dashboard, a CI job), found by comparing what is live with what the bot last left there.

Pure functions over the engine's records; :mod:`bot.engine.drift_watch` reads the inputs,
announces what it finds once and audits it as ``drift.unauthorized_change``::

    known = last_deployed(release, audit_entries)      # the bot's last change to the script
    drift = find_drift(active_deployment, known)       # None, or what differs

What the bot left is the last release there that reached Cloudflare: its deployments (every
step's, and a rollback's) and the split it ended with (the new version at 100% when it
succeeded, the stable one when it rolled back or failed). A live deployment that is one of
those, or serves exactly that split (e.g. the bot's own fail-safe restore), is no drift.
Before the bot's first release on a script there is nothing to compare with, so no drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.engine.model import AuditEntry, Deployment, Kind, Release, VersionShare
from bot.engine.states import State

DRIFT_ACTION = "drift.unauthorized_change"

# Audit detail keys that name a deployment the bot made or verified.
_DEPLOYMENT_KEYS = ("deployment_id", "verified_deployment")


@dataclass(frozen=True, slots=True)
class LastDeployed:
    """What the bot last left live on one script, and through which release."""

    release_key: str
    deployment_ids: frozenset[str]
    split: tuple[VersionShare, ...] | None


@dataclass(frozen=True, slots=True)
class Drift:
    """A live deployment the bot did not make, where it expected ``expected``."""

    service: str
    environment: str
    script: str
    deployment: Deployment
    expected: LastDeployed

    def detail(self) -> dict[str, Any]:
        """The audit record's detail: who changed what, when, and how."""
        dep = self.deployment
        return {
            "deployment_id": dep.id,
            "author_email": dep.author_email,
            "created_on": dep.created_on.isoformat() if dep.created_on else None,
            "source": dep.source,
            "message": dep.message,
            "split": split_dict(dep.versions),
            "expected_release": self.expected.release_key,
            "expected_split": split_dict(self.expected.split) if self.expected.split else None,
        }


class DriftLedger(Protocol):
    """Remembers which drifts were announced, so each is announced once (by one replica)."""

    async def record_once(self, entry: AuditEntry, deployment_id: str) -> bool:
        """Store ``entry`` unless a drift record for the same service, environment and
        deployment exists; True when it was stored (the caller announces it)."""
        ...


def split_dict(split: Sequence[VersionShare]) -> dict[str, float]:
    return {s.version_id: s.percentage for s in split}


def reached_edge(release: Release) -> bool:
    """Whether a finished release changed (or verified) the Worker's traffic."""
    if release.kind is Kind.RESTORE_DB or not release.state.is_terminal:
        return False
    if any(step.deployment_id for step in release.steps):
        return True
    # A release that started and then failed or rolled back left the stable version at 100%.
    return release.current_step >= 0 and release.state in (State.ROLLED_BACK, State.FAILED)


def last_deployed(release: Release, audit: Sequence[AuditEntry]) -> LastDeployed:
    """What ``release`` (one that :func:`reached_edge`) left live, from it and its records."""
    ids = {step.deployment_id for step in release.steps if step.deployment_id}
    for step in release.steps:
        verified = (step.gate or {}).get("verified_deployment")
        if isinstance(verified, str):
            ids.add(verified)
    for entry in audit:
        if entry.release_id not in (None, release.id):
            continue
        for key in _DEPLOYMENT_KEYS:
            value = entry.detail.get(key)
            if isinstance(value, str) and value:
                ids.add(value)
    split: tuple[VersionShare, ...] | None = None
    if release.state is State.SUCCEEDED:
        split = (VersionShare(release.version_id, 100),)
    elif release.stable_version_id:
        split = (VersionShare(release.stable_version_id, 100),)
    return LastDeployed(release.key, frozenset(ids), split)


def find_drift(
    service: str,
    environment: str,
    script: str,
    active: Deployment | None,
    known: LastDeployed | None,
) -> Drift | None:
    """The drift on ``script``, if the live deployment is not what the bot left there."""
    if active is None or known is None:
        return None
    if not known.deployment_ids and known.split is None:
        return None  # the bot cannot say what should be live
    if active.id in known.deployment_ids:
        return None
    if known.split is not None and active.same_split(known.split):
        return None
    return Drift(service, environment, script, active, known)
