"""The pre-deploy check rules: what counts as green, and what Approve is refused for."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Checks, Policy
from bot.engine.checks import (
    FAILED,
    PASSED,
    PENDING,
    ChecksReport,
    Readings,
    approval_blocker,
    evaluate,
)
from bot.engine.model import WorkerVersion
from bot.engine.source import CheckResult, CheckState, PullRequest, Review, VersionBuild
from bot.engine.sources import VersionSource, resolve_source

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
S, F, P = CheckState.SUCCESS, CheckState.FAILURE, CheckState.PENDING
RAW = {
    "github": {"repository": "o/r", "token_env": "T"},
    "required": ["ci", "codeql"],
    "review": "approved",
    "builds": "success",
}
SPEC = Checks.model_validate(
    {
        "github": {"repository": "o/r", "token_env": "T"},
        "required": ["ci", "codeql"],
        "review": "approved",
        "builds": "success",
    }
)
PULL = PullRequest(3, "https://github.com/o/r/pull/3", "Faster search", "ana", merged=True)


def readings(
    *,
    runs=(("ci", S), ("codeql", S)),
    reviews=(("ben", "APPROVED"),),
    outcome: str | None = "success",
    statuses=(),
) -> Readings:  # type: ignore[no-untyped-def]
    return Readings(
        runs=[CheckResult(n, s, f"https://ci/{n}", s.value) for n, s in runs],
        statuses=[CheckResult(n, s, None, s.value, "status") for n, s in statuses],
        pulls=[PULL],
        reviews={3: [Review(who, state) for who, state in reviews]},
        build=VersionBuild("v", "abc", "main", "o/r", outcome),
    )


def states(found: Readings) -> dict[str, CheckState]:
    return {i.name: i.state for i in evaluate(SPEC, found)}


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (readings(), {"ci": S, "codeql": S, "review": S, "build": S}),
        (readings(runs=(("ci", S),)), {"ci": S, "codeql": P, "review": S, "build": S}),
        (
            readings(runs=(("ci", S),), statuses=(("codeql", F),)),
            {"ci": S, "codeql": F, "review": S, "build": S},
        ),
        (readings(reviews=(("ana", "APPROVED"),)), {"ci": S, "codeql": S, "review": F, "build": S}),
        (
            readings(reviews=(("ben", "APPROVED"), ("cy", "CHANGES_REQUESTED"))),
            {"ci": S, "codeql": S, "review": F, "build": S},
        ),
        (
            readings(reviews=(("cy", "CHANGES_REQUESTED"), ("cy", "APPROVED"))),
            {"ci": S, "codeql": S, "review": S, "build": S},
        ),
        (
            readings(reviews=(("ben", "COMMENTED"),)),
            {"ci": S, "codeql": S, "review": F, "build": S},
        ),
        (readings(outcome=None), {"ci": S, "codeql": S, "review": S, "build": P}),
        (readings(outcome="fail"), {"ci": S, "codeql": S, "review": S, "build": F}),
    ],
)
def test_each_check(found: Readings, expected: dict[str, CheckState]) -> None:
    assert states(found) == expected


def test_a_commit_in_two_pull_requests_counts_the_approved_one() -> None:
    """The commit is in #3, approved only by its author, and in #4, approved by ben."""
    other = PullRequest(4, "https://github.com/o/r/pull/4", "Backport", "ana", merged=True)
    both = Readings(
        runs=readings().runs,
        pulls=[PULL, other],
        reviews={3: [Review("ana", "APPROVED")], 4: [Review("ben", "APPROVED")]},
    )
    review = {i.name: i for i in evaluate(SPEC, both)}["review"]
    assert (review.state, review.detail) == (S, "#4 approved by ben")
    only_author = Readings(
        runs=readings().runs, pulls=[PULL, other], reviews={3: [Review("ana", "APPROVED")]}
    )
    review = {i.name: i for i in evaluate(SPEC, only_author)}["review"]
    assert (review.state, review.detail) == (F, "#3 is approved only by its author, ana")


def test_no_pull_request_and_no_build_fail() -> None:
    items = {i.name: i for i in evaluate(SPEC, Readings(runs=readings().runs))}
    assert items["review"].detail == "no pull request has this commit"
    assert items["build"].detail == "no Workers Build made this version"


def test_verdicts_and_the_refusal_name_the_checks() -> None:
    red = ChecksReport(evaluate(SPEC, readings(runs=(("ci", S), ("codeql", F)))), NOW, NOW)
    assert red.verdict == FAILED
    assert approval_blocker(red) == "its pre-deploy checks did not pass: codeql (failure)"
    waiting = ChecksReport(evaluate(SPEC, readings(runs=(("ci", P),))), NOW, NOW)
    assert waiting.verdict == PENDING
    assert approval_blocker(waiting) == (
        "its pre-deploy checks are not all green yet: ci (pending), codeql (pending)"
    )
    late = waiting.settled_by_time()
    assert late.verdict == FAILED and "did not settle in time" in late.items[0].detail
    green = ChecksReport(evaluate(SPEC, readings()), NOW, NOW)
    assert green.verdict == PASSED and approval_blocker(green) is None
    assert approval_blocker(None) == "its pre-deploy checks have not been read yet"
    skipped = ChecksReport((), NOW, NOW, skipped="break-glass")
    assert approval_blocker(skipped) is None


def test_a_report_survives_the_database() -> None:
    report = ChecksReport(
        evaluate(SPEC, readings(outcome=None)),
        NOW,
        NOW - timedelta(minutes=1),
        "abc",
        "o/r",
        waiting_until=NOW + timedelta(seconds=30),
    )
    again = ChecksReport.from_dict(report.to_dict())
    assert again == report and again.same_as(report)


def test_the_source_is_the_build_else_the_annotations() -> None:
    version = WorkerVersion("v1", tag="v1.4.2", message="m", triggered_by="secret")
    plain = resolve_source(version, None)
    assert (plain.origin, plain.tag, plain.secret_change, plain.commit_sha) == (
        "annotations",
        "v1.4.2",
        True,
        None,
    )
    built = resolve_source(
        version, VersionBuild("v1", "abc", "main", "o/r", "success", "https://pr")
    )
    assert (built.from_build, built.commit_sha, built.pull_request_url) == (
        True,
        "abc",
        "https://pr",
    )
    assert VersionSource.from_dict(built.to_dict()) == built


def test_config_rules() -> None:
    with pytest.raises(ValueError, match="at least one of required, review or builds"):
        Checks.model_validate({"github": {"repository": "o/r", "token_env": "T"}})
    with pytest.raises(ValueError, match="should match pattern"):
        Checks.model_validate(
            {"github": {"repository": "not a repo", "token_env": "T"}, "review": "approved"}
        )
    with pytest.raises(ValueError, match="needs approvals_required of at least 1"):
        Policy.model_validate({"checks": RAW})
    assert (
        Policy.model_validate(
            {"approvals_required": 1, "approvers": ["U0ALICE"], "checks": RAW}
        ).checks
        == SPEC
    )


def test_versions_list_where_each_came_from() -> None:
    from bot.slack.blocks.views import versions_view

    built = WorkerVersion("1a2b3c4d-0000", tag="v2", created_on=NOW)
    secret = WorkerVersion("5e6f7a8b-0000", tag="v2", triggered_by="secret", created_on=NOW)
    sources = {
        built.id: resolve_source(
            built, VersionBuild(built.id, "abcdef12", "fix/<b>", "o/r", "fail")
        ),
        secret.id: resolve_source(secret, None),
    }
    text, _ = versions_view("api", "production", [built, secret], None, NOW, sources=sources)
    first, second = text.splitlines()
    assert "from `abcdef1` on fix/&lt;b&gt; (build fail)" in first
    assert second.endswith("· secret change")


def test_a_long_checklist_keeps_its_count_and_the_github_line() -> None:
    """30 failing checks with long job URLs and details: the list stops where the card's
    section runs out of room, and still ends with "and N more" and GitHub's error."""
    from bot.engine.checks import CheckItem
    from bot.engine.model import Release
    from bot.slack.blocks.checks import checklist

    url = (
        "https://github.com/o/r/actions/runs/1234567890/job/9876543210?pr=42&check_suite_focus=true"
    )
    items = tuple(
        CheckItem(f"job-{n:02d}", CheckState.FAILURE, "check_run", url, "x" * 140)
        for n in range(30)
    )
    report = ChecksReport(items, NOW, NOW, "abc1234", "o/r", error="GitHub API rate limit")
    release = Release(
        "api", "production", "api", "v", "U0CAROL", "production", checks=report.to_dict()
    )
    text = checklist(release)
    assert text is not None and len(text) <= 2900
    *_, more, github = text.splitlines()
    assert re.fullmatch(r"and \d+ more", more) and int(more.split()[1]) > 5
    assert github == ":warning: GitHub: GitHub API rate limit"
