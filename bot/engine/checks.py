"""Pre-deploy checks, decided from what GitHub and Workers Builds report: pure rules and the
report a release keeps (``Release.checks``).

    items = evaluate(spec, Readings(runs, statuses, pulls, reviews, build), version_id)
    report = ChecksReport(items, read_at=now, started_at=first_read)
    report.verdict        # "passed", "failed" or "pending"

Rules: each ``required`` name must be a check run (or, failing that, a commit status) that
concluded ``success``; not reported yet is pending. ``review: approved``: a pull request of
the commit has an approval from someone other than its author, and no one's latest review
asks for changes. ``builds: success``: the Workers Build that made the version succeeded (a
running build is pending; none at all fails).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.config import Checks as ChecksSpec
from bot.engine.source import CheckResult, CheckState, PullRequest, Review, VersionBuild

PASSED, FAILED, PENDING, SKIPPED = "passed", "failed", "pending", "skipped"
REVIEW, BUILD = "review", "build"


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One line of the checklist: ``kind`` is check_run, status, review or build; ``detail``
    says why in plain words (GitHub's and Cloudflare's own words included)."""

    name: str
    state: CheckState
    kind: str
    url: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Readings:
    """What was read for one commit and version."""

    runs: Sequence[CheckResult] = ()
    statuses: Sequence[CheckResult] = ()
    pulls: Sequence[PullRequest] = ()
    reviews: dict[int, Sequence[Review]] = field(default_factory=dict)
    build: VersionBuild | None = None


def _required(name: str, readings: Readings) -> CheckItem:
    for found in (readings.runs, readings.statuses):
        for result in found:
            if result.name == name:
                return CheckItem(name, result.state, result.kind, result.url, result.detail)
    return CheckItem(name, CheckState.PENDING, "check_run", None, "not reported yet")


def _review(readings: Readings) -> CheckItem:
    if not readings.pulls:
        return CheckItem(
            REVIEW, CheckState.FAILURE, REVIEW, None, "no pull request has this commit"
        )
    last = None
    author_only: CheckItem | None = None  # said only when no other pull request is approved
    for pull in readings.pulls:
        last = pull
        latest: dict[str, str] = {}
        for review in readings.reviews.get(pull.number, ()):
            if review.reviewer and review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[review.reviewer] = review.state
        others = {who: state for who, state in latest.items() if who != pull.author}
        if any(state == "CHANGES_REQUESTED" for state in others.values()):
            asked = sorted(w for w, s in others.items() if s == "CHANGES_REQUESTED")
            return CheckItem(
                REVIEW,
                CheckState.FAILURE,
                REVIEW,
                pull.url,
                f"#{pull.number}: changes requested by {', '.join(asked)}",
            )
        approvers = sorted(w for w, s in others.items() if s == "APPROVED")
        if approvers:
            return CheckItem(
                REVIEW,
                CheckState.SUCCESS,
                REVIEW,
                pull.url,
                f"#{pull.number} approved by {', '.join(approvers)}",
            )
        if latest.get(pull.author or "") == "APPROVED" and author_only is None:
            author_only = CheckItem(
                REVIEW,
                CheckState.FAILURE,
                REVIEW,
                pull.url,
                f"#{pull.number} is approved only by its author, {pull.author}",
            )
    if author_only is not None:
        return author_only
    assert last is not None
    return CheckItem(
        REVIEW, CheckState.FAILURE, REVIEW, last.url, f"#{last.number} has no approving review"
    )


def _build(build: VersionBuild | None) -> CheckItem:
    if build is None:
        return CheckItem(
            BUILD, CheckState.FAILURE, BUILD, None, "no Workers Build made this version"
        )
    if build.outcome is None:
        return CheckItem(BUILD, CheckState.PENDING, BUILD, None, "the build is running")
    state = CheckState.SUCCESS if build.outcome == "success" else CheckState.FAILURE
    return CheckItem(BUILD, state, BUILD, None, f"build {build.outcome}")


def evaluate(spec: ChecksSpec, readings: Readings) -> tuple[CheckItem, ...]:
    items = [_required(name, readings) for name in spec.required]
    if spec.review == "approved":
        items.append(_review(readings))
    if spec.builds == "success":
        items.append(_build(readings.build))
    return tuple(items)


def unsourced(spec: ChecksSpec, why: str) -> tuple[CheckItem, ...]:
    """Every check failed because the version's commit is not known (no build, no sha)."""
    names = [*spec.required, *([REVIEW] if spec.review else []), *([BUILD] if spec.builds else [])]
    return tuple(CheckItem(n, CheckState.FAILURE, "check_run", None, why) for n in names)


@dataclass(frozen=True, slots=True)
class ChecksReport:
    """The checklist as last read. ``skipped``: why the checks were not asked for (a
    break-glass deploy); ``error``: why they could not be read (GitHub down, a wrong
    token); ``waiting_until``: GitHub asked to wait until then."""

    items: tuple[CheckItem, ...]
    read_at: datetime
    started_at: datetime
    commit_sha: str | None = None
    repository: str | None = None
    skipped: str | None = None
    error: str | None = None
    waiting_until: datetime | None = None
    gave_up: bool = False  # pending ones stopped being read (settle_within passed)

    @property
    def verdict(self) -> str:
        if self.skipped:
            return SKIPPED
        if self.error and not self.items:
            return FAILED if self.gave_up else PENDING
        states = {i.state for i in self.items}
        if CheckState.FAILURE in states:
            return FAILED
        if CheckState.PENDING in states or self.error:
            return FAILED if self.gave_up else PENDING
        return PASSED

    @property
    def blocking(self) -> tuple[CheckItem, ...]:
        """The checks that are not success, in the order configured."""
        return tuple(i for i in self.items if i.state is not CheckState.SUCCESS)

    def settled_by_time(self) -> ChecksReport:
        """The pending ones given up on: they did not settle in time."""
        items = tuple(
            replace(i, state=CheckState.FAILURE, detail=f"{i.detail}; did not settle in time")
            if i.state is CheckState.PENDING
            else i
            for i in self.items
        )
        return replace(self, items=items, gave_up=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [
                {
                    "name": i.name,
                    "state": i.state.value,
                    "kind": i.kind,
                    "url": i.url,
                    "detail": i.detail,
                }
                for i in self.items
            ],
            "read_at": self.read_at.isoformat(),
            "started_at": self.started_at.isoformat(),
            "commit_sha": self.commit_sha,
            "repository": self.repository,
            "skipped": self.skipped,
            "error": self.error,
            "waiting_until": self.waiting_until.isoformat() if self.waiting_until else None,
            "gave_up": self.gave_up,
            "verdict": self.verdict,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ChecksReport | None:
        if not data:
            return None
        waiting = data.get("waiting_until")
        return cls(
            items=tuple(
                CheckItem(
                    str(i["name"]),
                    CheckState(i["state"]),
                    str(i.get("kind") or "check_run"),
                    i.get("url"),
                    str(i.get("detail") or ""),
                )
                for i in data.get("items", [])
            ),
            read_at=datetime.fromisoformat(data["read_at"]),
            started_at=datetime.fromisoformat(data["started_at"]),
            commit_sha=data.get("commit_sha"),
            repository=data.get("repository"),
            skipped=data.get("skipped"),
            error=data.get("error"),
            waiting_until=datetime.fromisoformat(waiting) if waiting else None,
            gave_up=bool(data.get("gave_up")),
        )

    def same_as(self, other: ChecksReport | None) -> bool:
        """Whether a person would see the same checklist (times aside)."""
        if other is None:
            return False
        return (self.items, self.skipped, self.error, self.waiting_until, self.gave_up) == (
            other.items,
            other.skipped,
            other.error,
            other.waiting_until,
            other.gave_up,
        )


def approval_blocker(report: ChecksReport | None) -> str | None:
    """Why Approve is refused now (plain words naming the checks), or None."""
    if report is None:
        return "its pre-deploy checks have not been read yet"
    verdict = report.verdict
    if verdict in (PASSED, SKIPPED):
        return None
    if not report.items and report.error:
        return f"its pre-deploy checks could not be read ({report.error})"
    named = ", ".join(f"{i.name} ({_word(i)})" for i in report.blocking)
    if verdict == PENDING:
        return f"its pre-deploy checks are not all green yet: {named}"
    return f"its pre-deploy checks did not pass: {named}"


def _word(item: CheckItem) -> str:
    if item.state is CheckState.PENDING:
        return "pending"
    return item.detail if item.kind in (REVIEW, BUILD) else (item.detail or "failed")
