"""What the GitHub stand-in knows: repositories with a straight history of commits, check
runs and statuses per commit, pull requests with their reviews, files per commit, and the
rate-limit trouble a test or the console asks for."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

RATE_LIMIT = 5000


class StandInError(ValueError):
    """A test or the console asked for something impossible (unknown repository, commit)."""


def sha_of(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def blob_sha(path: str, content: bytes | None) -> str:
    """A stable id for a file (or a folder, ``content`` None) like git's blob ids."""
    return sha_of(path, (content or b"").hex())


@dataclass
class GhCommit:
    sha: str
    message: str
    author_login: str | None
    author_name: str
    date: datetime
    parent: str | None
    files: dict[str, bytes]  # the whole tree at this commit


@dataclass
class GhRun:
    id: int
    name: str
    status: str  # queued, in_progress, completed
    conclusion: str | None
    started_at: datetime
    completed_at: datetime | None
    # a run that finishes by itself (the dev console's demo): ``settles_after`` seconds after
    # it was first read, it completes as ``settles_to``
    settles_after: float | None = None
    settles_to: str | None = None
    first_read: datetime | None = None


@dataclass
class GhStatus:
    id: int
    context: str
    state: str  # error, failure, pending, success
    created_at: datetime
    updated_at: datetime


@dataclass
class GhReview:
    id: int
    user: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED
    commit_id: str
    submitted_at: datetime


@dataclass
class GhPull:
    number: int
    title: str
    author: str
    head_sha: str
    merge_commit_sha: str | None
    commits: list[str]
    created_at: datetime
    merged_at: datetime | None
    reviews: list[GhReview] = field(default_factory=list)


@dataclass
class GhRepo:
    owner: str
    name: str
    history: list[GhCommit] = field(default_factory=list)  # oldest first
    runs: dict[str, list[GhRun]] = field(default_factory=dict)
    statuses: dict[str, list[GhStatus]] = field(default_factory=dict)
    pulls: list[GhPull] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Limit:
    """The next ``times`` API requests are refused as a rate limit: ``kind`` "primary"
    (403, ``x-ratelimit-remaining: 0`` and a reset ``reset_in`` seconds on) or "secondary"
    (403 with ``retry-after: reset_in``)."""

    kind: str
    reset_in: float
    times: int = 1
    status: int = 403


class GitHubState:
    """Everything the stand-in serves; every change holds ``lock``."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.repos: dict[str, GhRepo] = {}
        self.tags: dict[str, dict[str, str]] = {}  # repository -> release tag -> head sha
        self.limits: list[Limit] = []
        self.remaining = RATE_LIMIT
        self.window_ends = clock() + timedelta(hours=1)
        self.contract_violations: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self._ids = 1000

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    # -- building -----------------------------------------------------------------------------

    def repo(self, full_name: str) -> GhRepo:
        found = self.repos.get(full_name.lower())
        if found is None:
            raise StandInError(f"no repository {full_name}")
        return found

    def add_repo(self, full_name: str) -> GhRepo:
        owner, name = full_name.split("/")
        with self.lock:
            return self.repos.setdefault(full_name.lower(), GhRepo(owner, name))

    def commit(
        self,
        full_name: str,
        message: str,
        *,
        author: str | None = "ana",
        files: dict[str, bytes | None] | None = None,
        when: datetime | None = None,
    ) -> str:
        """Add a commit on top of the history (``files``: what changes; None deletes);
        returns its sha."""
        with self.lock:
            repo = self.repo(full_name)
            parent = repo.history[-1] if repo.history else None
            tree = dict(parent.files) if parent else {}
            for path, content in (files or {}).items():
                if content is None:
                    tree.pop(path, None)
                else:
                    tree[path] = content
            sha = sha_of(full_name, message, parent.sha if parent else "", str(len(repo.history)))
            repo.history.append(
                GhCommit(
                    sha=sha,
                    message=message,
                    author_login=author,
                    author_name=(author or "Someone").title(),
                    date=when or self.clock(),
                    parent=parent.sha if parent else None,
                    files=tree,
                )
            )
            return sha

    def find_commit(self, repo: GhRepo, ref: str) -> GhCommit | None:
        """The commit a ref names, as GitHub reads ``ref``: a sha (or its prefix of 7 or more),
        a tag, or the default branch (``main``, the newest commit here)."""
        ref = ref.removeprefix("refs/tags/").removeprefix("refs/heads/")
        tagged = self.tags.get(repo.full_name, {}).get(ref)
        if tagged is not None:
            ref = tagged
        elif ref in ("main", "HEAD"):
            return repo.history[-1] if repo.history else None
        for commit in repo.history:
            if commit.sha == ref or (len(ref) >= 7 and commit.sha.startswith(ref)):
                return commit
        return None

    def set_check(
        self, full_name: str, sha: str, name: str, status: str, conclusion: str | None = None
    ) -> None:
        """Start or finish the check run ``name`` of ``sha`` (a re-run replaces it)."""
        with self.lock:
            repo = self.repo(full_name)
            now = self.clock()
            runs = repo.runs.setdefault(sha, [])
            done = now if status == "completed" else None
            runs[:] = [r for r in runs if r.name != name]
            runs.append(GhRun(self.next_id(), name, status, conclusion, now, done))

    def run_for_a_while(
        self, full_name: str, sha: str, name: str, seconds: float, conclusion: str
    ) -> None:
        """A check run in progress that completes as ``conclusion`` ``seconds`` after anyone
        first reads it."""
        self.set_check(full_name, sha, name, "in_progress")
        with self.lock:
            run = self.repo(full_name).runs[sha][-1]
            run.settles_after, run.settles_to = seconds, conclusion

    def runs_of(self, repo: GhRepo, sha: str) -> list[GhRun]:
        """The runs of ``sha`` as they are now (those running for a while may be done)."""
        with self.lock:
            now = self.clock()
            runs = repo.runs.get(sha, [])
            for run in runs:
                if run.settles_after is None or run.status == "completed":
                    continue
                if run.first_read is None:
                    run.first_read = now
                elif (now - run.first_read).total_seconds() >= run.settles_after:
                    run.status, run.conclusion, run.completed_at = "completed", run.settles_to, now
            return list(runs)

    def set_status(self, full_name: str, sha: str, context: str, state: str) -> None:
        with self.lock:
            repo = self.repo(full_name)
            now = self.clock()
            found = repo.statuses.setdefault(sha, [])
            found[:] = [s for s in found if s.context != context]
            found.append(GhStatus(self.next_id(), context, state, now, now))

    def open_pull(
        self, full_name: str, title: str, author: str, commits: list[str], merged: bool = True
    ) -> int:
        """A pull request of ``commits`` (its head is the last); merged as those commits."""
        with self.lock:
            repo = self.repo(full_name)
            number = len(repo.pulls) + 1
            now = self.clock()
            repo.pulls.append(
                GhPull(
                    number=number,
                    title=title,
                    author=author,
                    head_sha=commits[-1],
                    merge_commit_sha=commits[-1] if merged else None,
                    commits=list(commits),
                    created_at=now,
                    merged_at=now if merged else None,
                )
            )
            return number

    def review(self, full_name: str, number: int, user: str, state: str) -> None:
        with self.lock:
            pull = self.repo(full_name).pulls[number - 1]
            pull.reviews.append(GhReview(self.next_id(), user, state, pull.head_sha, self.clock()))

    def limit(self, kind: str, reset_in: float, times: int = 1, status: int = 403) -> None:
        with self.lock:
            self.limits.append(Limit(kind, reset_in, times, status))

    def take_limit(self) -> Limit | None:
        with self.lock:
            if not self.limits:
                return None
            first = self.limits[0]
            first.times -= 1
            if first.times <= 0:
                self.limits.pop(0)
            return first

    def spend(self) -> tuple[int, datetime]:
        """One request of the hour's allowance: what is left, and when the window ends."""
        with self.lock:
            now = self.clock()
            if now >= self.window_ends:
                self.remaining, self.window_ends = RATE_LIMIT, now + timedelta(hours=1)
            self.remaining = max(0, self.remaining - 1)
            return self.remaining, self.window_ends
