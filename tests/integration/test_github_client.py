"""The GitHub adapter against the stand-in (answers held to GitHub's REST description):
what each operation reads, and how it waits out rate limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.engine.errors import SourceRejected, SourceUnavailable
from bot.engine.source import Allowance, CheckState, SourceCall
from bot.github.client import GitHubClient
from bot.github.seed import seed_example
from bot.github.standin_state import GitHubState
from tests.fixtures.cloudflare import RecordingSleep

pytest_plugins = ["tests.fixtures.github"]

REPO = "battleborn/tax-api"
Factory = Callable[..., tuple[GitHubClient, RecordingSleep]]


def heads(state: GitHubState) -> dict[str, str]:
    return state.tags[REPO]


async def test_checks_statuses_pulls_and_reviews(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, _ = gh_client_factory()
    v142 = heads(gh_state)["v1.4.2"]
    gh_state.set_status(REPO, v142, "security/snyk", "failure")
    gh_state.set_check(REPO, v142, "ci", "completed", "failure")  # a re-run replaces it
    gh_state.set_check(REPO, v142, "ci", "completed", "success")

    runs = {r.name: r for r in await client.check_runs(REPO, v142)}
    assert runs["ci"].state is CheckState.SUCCESS
    assert runs["codeql"].state is CheckState.PENDING and runs["codeql"].detail == "in_progress"
    assert runs["ci"].url and runs["ci"].url.startswith(
        "https://github.com/battleborn/tax-api/runs/"
    )
    [status] = await client.statuses(REPO, v142)
    assert (status.name, status.state, status.kind) == (
        "security/snyk",
        CheckState.FAILURE,
        "status",
    )

    [pull] = await client.pulls_for_commit(REPO, v142)
    assert (pull.number, pull.title, pull.author, pull.merged) == (
        3,
        "Faster receipt search",
        "ana",
        True,
    )
    [review] = await client.reviews(REPO, pull.number)
    assert (review.reviewer, review.state, review.commit_id) == ("ben", "APPROVED", v142)


async def test_compare_lists_the_commits_between(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, _ = gh_client_factory()
    found = heads(gh_state)
    ahead = await client.compare(REPO, found["v1.4.0"], found["v1.4.2"])
    assert (ahead.status, ahead.ahead_by, ahead.total_commits) == ("ahead", 4, 4)
    assert [c.title for c in ahead.commits][-1] == "Faster receipt search"
    assert {c.author for c in ahead.commits} == {"ana", "ben"}
    behind = await client.compare(REPO, found["v1.4.2"], found["v1.4.1"])
    assert (behind.status, behind.behind_by, behind.commits) == ("behind", 2, ())


async def test_contents_files_and_folders(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, _ = gh_client_factory()
    found = heads(gh_state)
    listing = await client.folder(REPO, "migrations", found["v1.4.2"])
    assert listing is not None
    assert [e.name for e in listing] == ["0001_create_filings.sql", "0002_receipts_index.sql"]
    assert await client.folder(REPO, "migrations", found["v1.4.0"]) is not None
    file = await client.file(REPO, "migrations/0001_create_filings.sql", found["v1.4.1"])
    assert file is not None and file.content.startswith(b"CREATE TABLE filings")
    assert await client.file(REPO, "migrations/0002_receipts_index.sql", found["v1.4.1"]) is None
    assert await client.file(REPO, "nothing/here.sql", found["v1.4.2"]) is None


async def test_secondary_limit_waits_retry_after_and_says_so(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, sleep = gh_client_factory()
    told: list[datetime | None] = []

    async def on_busy(until: datetime | None) -> None:
        told.append(until)

    gh_state.limit("secondary", reset_in=7)
    runs = await client.check_runs(REPO, heads(gh_state)["v1.4.1"], SourceCall(on_busy=on_busy))
    assert len(runs) == 2
    assert sleep.calls == [7.0]
    assert told[0] is not None and told[-1] is None


async def test_calls_sharing_an_allowance_stop_when_it_is_spent(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    """One read's calls draw on one allowance: 40 s of waiting in the first leaves 20 s, so
    the second's 40 s wait is not taken; each on its own budget would have waited."""
    client, sleep = gh_client_factory()
    sha = heads(gh_state)["v1.4.1"]
    gh_state.limit("secondary", reset_in=40)
    shared = Allowance(60.0)
    read = SourceCall(60.0, None, shared)

    assert len(await client.check_runs(REPO, sha, read)) == 2
    assert sleep.calls == [40.0] and 19.0 < shared.seconds <= 20.0
    gh_state.limit("secondary", reset_in=40)
    with pytest.raises(SourceUnavailable):
        await client.statuses(REPO, sha, read)
    assert sleep.calls == [40.0]  # the second wait did not fit in what was left
    with pytest.raises(SourceUnavailable, match="time for GitHub is spent"):
        await client.statuses(REPO, sha, SourceCall(60.0, None, Allowance(0.0)))

    gh_state.limit("secondary", reset_in=40)
    await client.statuses(REPO, sha, SourceCall(60.0))  # a call of its own waits it out
    assert sleep.calls[-1] == 40.0


async def test_primary_limit_waits_for_the_reset(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, sleep = gh_client_factory()
    gh_state.limit("primary", reset_in=3)
    await client.statuses(REPO, heads(gh_state)["v1.4.1"])
    [waited] = sleep.calls
    assert 3.0 <= waited <= 6.0  # until x-ratelimit-reset (whole seconds), and a second more


async def test_a_reset_too_far_away_gives_up_naming_the_limit(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, sleep = gh_client_factory(max_retry_after=60)
    gh_state.limit("primary", reset_in=1800)
    with pytest.raises(SourceUnavailable) as caught:
        await client.check_runs(REPO, heads(gh_state)["v1.4.1"])
    assert caught.value.rate_limited and caught.value.until is not None
    assert "rate limited (403)" in str(caught.value) and sleep.calls == []


async def test_a_spent_allowance_waits_before_asking(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, sleep = gh_client_factory()
    sha = heads(gh_state)["v1.4.1"]
    gh_state.remaining = 1  # this request spends the last one of a window ending soon
    gh_state.window_ends = datetime.now(UTC) + timedelta(seconds=5)
    await client.statuses(REPO, sha)
    await client.statuses(REPO, sha)
    [waited] = sleep.calls
    assert 3.0 <= waited <= 6.0
    gh_state.remaining = 1
    gh_state.window_ends = datetime.now(UTC) + timedelta(hours=1)
    await client.statuses(REPO, sha)
    with pytest.raises(SourceUnavailable, match="asked to wait"):
        await client.statuses(REPO, sha)  # an hour is beyond max_retry_after


async def test_refusals_are_rejections(gh_state: GitHubState, gh_client_factory: Factory) -> None:
    wrong, _ = gh_client_factory()
    wrong._http.headers["Authorization"] = "Bearer nope"
    with pytest.raises(SourceRejected) as caught:
        await wrong.check_runs(REPO, "f" * 40)
    assert caught.value.status == 401 and "token is wrong" in str(caught.value)
    client, _ = gh_client_factory()
    with pytest.raises(SourceRejected) as missing:
        await client.pulls_for_commit("battleborn/nope", "f" * 40)
    assert missing.value.status == 404
    with pytest.raises(ValueError):
        await client.check_runs("not a repo", "f" * 40)


def test_seed_names_each_release_head() -> None:
    state = GitHubState()
    found: dict[str, Any] = seed_example(state)
    assert set(found[REPO]) == {"v1.4.0", "v1.4.1", "v1.4.2"}
    assert heads(state) == found[REPO]
    history = state.repo(REPO).history
    assert [c.sha for c in history if "Ready for" in c.message] == list(found[REPO].values())


async def test_compare_of_many_commits_reads_the_newest_pages() -> None:
    import httpx
    from pydantic import SecretStr

    from bot.github.client import GitHubClient
    from bot.github.standin import create_standin
    from bot.github.standin_state import GitHubState

    state = GitHubState()
    state.add_repo("o/r")
    base = state.commit("o/r", "start")
    for i in range(250):
        state.commit("o/r", f"change {i}")
    app = create_standin(state, token="t", validate_contract=True)
    transport = httpx.ASGITransport(app=app)
    async with GitHubClient("http://gh", SecretStr("t"), transport=transport) as client:
        found = await client.compare("o/r", base, "main")
    assert found.total_commits == 250
    assert found.commits[-1].title == "change 249"
    assert len(found.commits) == 150  # pages 2 and 3 of 100
    assert state.contract_violations == []
