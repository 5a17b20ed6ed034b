"""The last known good: per environment, the versions that served all its traffic through a
release that ended well, newest first.

    good = known_good(history, versions)          # ["1a2b...", "9f8e...", ...]
    target = last_known_good(history, versions, live="1a2b...")   # "9f8e..."

Rules: a release counts when it succeeded (a deploy or a rollback: it ended at 100% and its
final checks passed). A version made by a secret change alone (``workers/triggered_by`` of a
secret update) is never taken: it is the same code under other secrets, and Cloudflare
refuses to go back across a secret change anyway. Only versions Cloudflare can still deploy
count (``deployable=true``: the newest 100); the window warning says when the last known good
is about to leave them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.engine.model import Kind, Release, WorkerVersion
from bot.engine.sources import SECRET_TRIGGERS
from bot.engine.states import State

WINDOW = 100  # Cloudflare deploys only the newest 100 versions of a Worker
WARN_WITHIN = 10  # warn when fewer than this many uploads would push it out


def _secret_change(version: WorkerVersion | None) -> bool:
    return version is not None and (version.triggered_by or "").lower() in SECRET_TRIGGERS


def known_good(
    history: Sequence[Release], deployable: Mapping[str, WorkerVersion] | None = None
) -> list[str]:
    """Version ids that ended well at 100%, newest release first, each once. With
    ``deployable`` (id → version, Cloudflare's deployable list) only those it holds."""
    found: list[str] = []
    for release in history:
        if release.state is not State.SUCCEEDED or release.kind not in (Kind.DEPLOY, Kind.ROLLBACK):
            continue
        vid = release.version_id
        if vid in found:
            continue
        version = deployable.get(vid) if deployable is not None else None
        if deployable is not None and version is None:
            continue
        if _secret_change(version):
            continue
        found.append(vid)
    return found


def last_known_good(
    history: Sequence[Release],
    deployable: Mapping[str, WorkerVersion] | None,
    live: str | None,
) -> str | None:
    """The newest known good that is not what is live now (what a rollback goes back to)."""
    for vid in known_good(history, deployable):
        if vid != live:
            return vid
    return None


def first_rollback_target(
    candidates: Iterable[str | None], deployable: Mapping[str, WorkerVersion], live: str | None
) -> str | None:
    """The first of ``candidates`` (newest first) a rollback may go back to when no known good
    is found: one Cloudflare can still deploy, not made by a secret change alone, not live."""
    for vid in candidates:
        if not vid or vid == live:
            continue
        version = deployable.get(vid)
        if version is not None and not _secret_change(version):
            return vid
    return None


@dataclass(frozen=True, slots=True)
class LastGood:
    """The environment's last known good and where it stands among the deployable versions
    (``position`` 1 is the newest upload)."""

    version_id: str
    tag: str | None
    position: int
    window: int = WINDOW

    @property
    def uploads_left(self) -> int:
        """Uploads after which Cloudflare can no longer deploy it."""
        return self.window - self.position + 1

    @property
    def nearly_out(self) -> bool:
        return self.uploads_left <= WARN_WITHIN

    def to_dict(self) -> dict[str, Any]:
        return {"version_id": self.version_id, "tag": self.tag, "position": self.position}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LastGood | None:
        if not data or not isinstance(data.get("version_id"), str):
            return None
        tag = data.get("tag")
        return cls(data["version_id"], tag if isinstance(tag, str) else None, int(data["position"]))


def last_good_of(
    history: Sequence[Release], deployable: Sequence[WorkerVersion], live: str | None
) -> LastGood | None:
    """The last known good there (besides what is live) and its place in ``deployable``
    (newest first)."""
    by_id = {v.id: v for v in deployable}
    vid = last_known_good(history, by_id, live)
    if vid is None:
        return None
    position = next(i for i, v in enumerate(deployable, start=1) if v.id == vid)
    return LastGood(vid, by_id[vid].tag, position)
