"""What ships: the difference between the live version and the candidate, before approval.

    diff = version_diff(live, candidate, comparison)
    diff.bindings_added        # (Binding("CACHE", "kv_namespace", "ns-1"),)
    diff.migration             # True: no gradual rollout, and no rollback past it

Plain data from Cloudflare's version details (bindings, secret names, compatibility date and
flags, usage model, Durable Object migration tag) and GitHub's comparison of the two commits
(at most ``MAX_COMMITS`` listed, the rest counted). A candidate older than live (created
before it, or an older semver tag) is a downgrade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.engine.model import Binding, VersionRuntime, WorkerVersion
from bot.engine.source import CommitSummary, Comparison

MAX_COMMITS = 20
SECRET_TYPES = frozenset({"secret_text", "secret_key"})
_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")
# "Title (#123)" (a squash merge) or "Merge pull request #123 from ..."
_PULL = re.compile(r"\(#(\d+)\)\s*$|^Merge pull request #(\d+)\b")


@dataclass(frozen=True, slots=True)
class BindingChange:
    """A binding of the same name whose type or resource changed."""

    name: str
    before: Binding
    after: Binding


@dataclass(frozen=True, slots=True)
class Change:
    """One setting, before (live) and after (candidate)."""

    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    title: str
    author: str | None
    url: str | None = None
    pull: int | None = None  # the pull request its message names


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """``live`` is None when nothing is live yet. ``runtime_unknown`` / ``commits_unknown``
    say in plain words why a side could not be read (then its fields are empty)."""

    live_id: str | None
    candidate_id: str
    bindings_added: tuple[Binding, ...] = ()
    bindings_removed: tuple[Binding, ...] = ()
    bindings_changed: tuple[BindingChange, ...] = ()
    secrets_added: tuple[str, ...] = ()
    secrets_removed: tuple[str, ...] = ()
    compatibility_date: Change | None = None
    flags_added: tuple[str, ...] = ()
    flags_removed: tuple[str, ...] = ()
    usage_model: Change | None = None
    migration_tag: Change | None = None
    commits: tuple[Commit, ...] = ()
    total_commits: int = 0
    commits_behind: int = 0  # commits live has that the candidate lacks (a downgrade drops them)
    compare_url: str | None = None
    downgrade: str | None = None  # why the candidate is older than live
    runtime_unknown: str | None = None
    commits_unknown: str | None = None

    @property
    def migration(self) -> bool:
        """A Durable Object migration ships: the rollout cannot be gradual, and a rollback
        to the live version will be refused afterwards."""
        return self.migration_tag is not None

    @property
    def more_commits(self) -> int:
        return max(0, self.total_commits - len(self.commits))

    @property
    def empty(self) -> bool:
        return self == VersionDiff(
            self.live_id,
            self.candidate_id,
            runtime_unknown=self.runtime_unknown,
            commits_unknown=self.commits_unknown,
        )

    def to_dict(self) -> dict[str, Any]:
        def binding(b: Binding) -> dict[str, Any]:
            return {"name": b.name, "type": b.type, "target": b.target}

        def change(c: Change | None) -> dict[str, Any] | None:
            return None if c is None else {"before": c.before, "after": c.after}

        return {
            "live_id": self.live_id,
            "candidate_id": self.candidate_id,
            "bindings_added": [binding(b) for b in self.bindings_added],
            "bindings_removed": [binding(b) for b in self.bindings_removed],
            "bindings_changed": [
                {"name": c.name, "before": binding(c.before), "after": binding(c.after)}
                for c in self.bindings_changed
            ],
            "secrets_added": list(self.secrets_added),
            "secrets_removed": list(self.secrets_removed),
            "compatibility_date": change(self.compatibility_date),
            "flags_added": list(self.flags_added),
            "flags_removed": list(self.flags_removed),
            "usage_model": change(self.usage_model),
            "migration_tag": change(self.migration_tag),
            "commits": [
                {"sha": c.sha, "title": c.title, "author": c.author, "url": c.url, "pull": c.pull}
                for c in self.commits
            ],
            "total_commits": self.total_commits,
            "commits_behind": self.commits_behind,
            "compare_url": self.compare_url,
            "downgrade": self.downgrade,
            "runtime_unknown": self.runtime_unknown,
            "commits_unknown": self.commits_unknown,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> VersionDiff | None:
        if not data:
            return None

        def binding(d: dict[str, Any]) -> Binding:
            return Binding(str(d["name"]), str(d["type"]), d.get("target"))

        def change(d: dict[str, Any] | None) -> Change | None:
            return None if not d else Change(d.get("before"), d.get("after"))

        return cls(
            live_id=data.get("live_id"),
            candidate_id=str(data["candidate_id"]),
            bindings_added=tuple(binding(b) for b in data.get("bindings_added", [])),
            bindings_removed=tuple(binding(b) for b in data.get("bindings_removed", [])),
            bindings_changed=tuple(
                BindingChange(str(c["name"]), binding(c["before"]), binding(c["after"]))
                for c in data.get("bindings_changed", [])
            ),
            secrets_added=tuple(data.get("secrets_added", [])),
            secrets_removed=tuple(data.get("secrets_removed", [])),
            compatibility_date=change(data.get("compatibility_date")),
            flags_added=tuple(data.get("flags_added", [])),
            flags_removed=tuple(data.get("flags_removed", [])),
            usage_model=change(data.get("usage_model")),
            migration_tag=change(data.get("migration_tag")),
            commits=tuple(
                Commit(
                    str(c["sha"]),
                    str(c.get("title") or ""),
                    c.get("author"),
                    c.get("url"),
                    c.get("pull"),
                )
                for c in data.get("commits", [])
            ),
            total_commits=int(data.get("total_commits") or 0),
            commits_behind=int(data.get("commits_behind") or 0),
            compare_url=data.get("compare_url"),
            downgrade=data.get("downgrade"),
            runtime_unknown=data.get("runtime_unknown"),
            commits_unknown=data.get("commits_unknown"),
        )


def pull_number(title: str) -> int | None:
    """The pull request a commit's first line names, as GitHub writes merges."""
    found = _PULL.search(title)
    if found is None:
        return None
    return int(found.group(1) or found.group(2))


def semver(tag: str | None) -> tuple[int, int, int, int, str] | None:
    """``v1.4.2`` → a sortable key (a pre-release sorts before its release); None else."""
    found = _SEMVER.match((tag or "").strip())
    if found is None:
        return None
    major, minor, patch, pre = found.groups()
    return int(major), int(minor), int(patch), 0 if pre else 1, pre or ""


def downgrade_of(live: WorkerVersion, candidate: WorkerVersion) -> str | None:
    """Why the candidate is older than live, or None."""
    if live.id == candidate.id:
        return None
    old, new = semver(live.tag), semver(candidate.tag)
    if old is not None and new is not None and new < old:
        return f"its tag {candidate.tag} is older than the live {live.tag}"
    if live.created_on and candidate.created_on and candidate.created_on < live.created_on:
        return "it was uploaded before the live version"
    return None


def _secrets(runtime: VersionRuntime) -> set[str]:
    return {b.name for b in runtime.bindings if b.type in SECRET_TYPES}


def _others(runtime: VersionRuntime) -> dict[str, Binding]:
    return {b.name: b for b in runtime.bindings if b.type not in SECRET_TYPES}


def _change(before: str | None, after: str | None) -> Change | None:
    return None if before == after else Change(before, after)


def commits_of(comparison: Comparison) -> tuple[Commit, ...]:
    """The newest ``MAX_COMMITS`` commits head has and base lacks, newest first."""
    listed: list[CommitSummary] = list(comparison.commits)[-MAX_COMMITS:]
    return tuple(
        Commit(c.sha, c.title, c.author, c.url, pull_number(c.title)) for c in reversed(listed)
    )


def version_diff(
    live: WorkerVersion | None,
    candidate: WorkerVersion,
    comparison: Comparison | None = None,
    *,
    commits_unknown: str | None = None,
) -> VersionDiff:
    """The diff from ``live`` (None: nothing live) to ``candidate``; both should carry their
    ``runtime`` (the version detail)."""
    commits: dict[str, Any] = {"commits_unknown": commits_unknown}
    if comparison is not None:
        commits = {
            "commits": commits_of(comparison),
            "total_commits": comparison.total_commits or len(comparison.commits),
            "commits_behind": max(0, comparison.behind_by),
            "compare_url": comparison.url,
            "commits_unknown": None,
        }
    if live is None:
        return VersionDiff(None, candidate.id, **commits)
    downgrade = downgrade_of(live, candidate)
    if live.runtime is None or candidate.runtime is None:
        return VersionDiff(
            live.id,
            candidate.id,
            downgrade=downgrade,
            runtime_unknown="the version details could not be read",
            **commits,
        )
    before, after = live.runtime, candidate.runtime
    old, new = _others(before), _others(after)
    changed = tuple(
        BindingChange(name, old[name], new[name])
        for name in sorted(old.keys() & new.keys())
        if old[name] != new[name]
    )
    old_flags, new_flags = set(before.compatibility_flags), set(after.compatibility_flags)
    return VersionDiff(
        live.id,
        candidate.id,
        bindings_added=tuple(new[n] for n in sorted(new.keys() - old.keys())),
        bindings_removed=tuple(old[n] for n in sorted(old.keys() - new.keys())),
        bindings_changed=changed,
        secrets_added=tuple(sorted(_secrets(after) - _secrets(before))),
        secrets_removed=tuple(sorted(_secrets(before) - _secrets(after))),
        compatibility_date=_change(before.compatibility_date, after.compatibility_date),
        flags_added=tuple(sorted(new_flags - old_flags)),
        flags_removed=tuple(sorted(old_flags - new_flags)),
        usage_model=_change(before.usage_model, after.usage_model),
        migration_tag=_change(before.migration_tag, after.migration_tag),
        downgrade=downgrade,
        **commits,
    )
