"""The GitHub adapter: the few REST operations pre-deploy checks, the diff and migrations
read, over one ``httpx.AsyncClient``. Implements the engine's ``CodeHost`` port.

Every request has a timeout and is retried until its deadline (``bot.github.transport``:
5xx, timeouts, GitHub's primary and secondary rate limits). Operations, from GitHub's REST
description (``openapi_subset.json`` beside this file):

    GET /repos/{owner}/{repo}/commits/{ref}/check-runs      checks/list-for-ref
    GET /repos/{owner}/{repo}/commits/{ref}/status          repos/get-combined-status-for-ref
    GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls    repos/list-pull-requests-associated-
                                                            with-commit
    GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews   pulls/list-reviews
    GET /repos/{owner}/{repo}/compare/{basehead}            repos/compare-commits
    GET /repos/{owner}/{repo}/contents/{path}?ref=          repos/get-content
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from bot.engine.errors import SourceRejected, SourceUnavailable
from bot.engine.source import (
    CheckResult,
    CommitSummary,
    Comparison,
    PullRequest,
    RepoEntry,
    RepoFile,
    Review,
    SourceCall,
    check_state,
)
from bot.github.transport import Retrier, rejected

REPO = "/repos/{owner}/{repo}"
CHECK_RUNS = REPO + "/commits/{ref}/check-runs"
STATUS = REPO + "/commits/{ref}/status"
PULLS = REPO + "/commits/{commit_sha}/pulls"
REVIEWS = REPO + "/pulls/{pull_number}/reviews"
COMPARE = REPO + "/compare/{basehead}"
CONTENTS = REPO + "/contents/{path}"

API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 10  # a runaway paginator stops after 1000 items
_NEXT = re.compile(r'<[^>]*[?&]page=(\d+)[^>]*>;\s*rel="next"')
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def split_repository(repository: str) -> tuple[str, str]:
    """``owner/name`` → ``(owner, name)``; ValueError for anything else."""
    if not _REPOSITORY.fullmatch(repository):
        raise ValueError(f"'{repository}' is not a GitHub repository (owner/name)")
    owner, name = repository.split("/")
    return owner, name


class GitHubClient:
    """GitHub's REST API at ``base_url`` (``https://api.github.com``) with a token.

    ``reads`` is how many seconds a call keeps retrying unless its ``SourceCall`` says
    otherwise; a rate limit asking for longer than ``max_retry_after`` ends the call at once.
    ``sleep``, ``jitter``, ``monotonic`` and ``wall`` are injectable for a fake clock. Use as
    an async context manager, or call ``aclose()``."""

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        timeout: float = 10.0,
        reads: float = 20.0,
        max_retry_after: float = 120.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.reads = reads
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {token.get_secret_value()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "releasebot",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self._retrier = Retrier(
            self._http,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_retry_after=max_retry_after,
            sleep=sleep,
            jitter=jitter,
            monotonic=monotonic,
            wall=wall,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    def _path(self, template: str, repository: str, **values: str) -> str:
        owner, name = split_repository(repository)
        # values come from versions and config: quoted so none adds a segment or a query
        # (a file's path keeps its slashes: GitHub reads it across segments)
        quoted = {k: quote(v, safe="/" if k == "path" else "") for k, v in values.items()}
        return template.format(owner=quote(owner, safe=""), repo=quote(name, safe=""), **quoted)

    async def _get(
        self,
        template: str,
        what: str,
        call: SourceCall | None,
        repository: str,
        params: dict[str, Any] | None,
        values: dict[str, str],
        *,
        missing_ok: bool = False,
    ) -> httpx.Response | None:
        call = call or SourceCall()
        budget = call.budget if call.budget is not None else self.reads
        shared = call.shared
        if shared is not None:
            if shared.seconds <= 0:
                raise SourceUnavailable(f"{what}: the read's time for GitHub is spent")
            budget = min(budget, shared.seconds)
        started = self._retrier.monotonic()
        try:
            response = await self._retrier.get(
                self._path(template, repository, **values),
                template,
                what,
                budget,
                call.on_busy,
                params,
            )
        finally:
            if shared is not None:
                shared.seconds -= self._retrier.monotonic() - started
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code != 200:
            raise rejected(response, what)
        return response

    async def _json(
        self,
        template: str,
        what: str,
        call: SourceCall | None,
        repository: str,
        params: dict[str, Any] | None = None,
        **values: str,
    ) -> Any:
        response = await self._get(template, what, call, repository, params, values)
        assert response is not None
        return _body(response, what)

    async def _pages(
        self,
        template: str,
        what: str,
        call: SourceCall | None,
        repository: str,
        key: str | None,
        params: dict[str, Any] | None = None,
        **values: str,
    ) -> list[Any]:
        """Every item across the pages (``Link: rel="next"``); ``key`` names the list in an
        object answer (``check_runs``), None for a plain list."""
        items: list[Any] = []
        page = 1
        for _ in range(MAX_PAGES):
            query = {**(params or {}), "per_page": PER_PAGE, "page": page}
            response = await self._get(template, what, call, repository, query, values)
            assert response is not None
            body = _body(response, what)
            found = body.get(key) if key is not None and isinstance(body, dict) else body
            if not isinstance(found, list):
                raise _unreadable(what, f"{key or 'the answer'} is not a list")
            items.extend(found)
            following = _NEXT.search(response.headers.get("link", ""))
            if following is None:
                break
            page = int(following.group(1))
        return items

    # -- checks -----------------------------------------------------------------------------

    async def check_runs(
        self, repository: str, ref: str, call: SourceCall | None = None
    ) -> list[CheckResult]:
        what = f"listing the check runs of {ref[:12]} in {repository}"
        runs = await self._pages(
            CHECK_RUNS, what, call, repository, "check_runs", {"filter": "latest"}, ref=ref
        )
        latest: dict[str, dict[str, Any]] = {}
        for run in runs:
            if not isinstance(run, dict) or not isinstance(run.get("name"), str):
                raise _unreadable(what, "a check run has no name")
            known = latest.get(run["name"])
            if known is None or _int(run.get("id")) > _int(known.get("id")):
                latest[run["name"]] = run
        return [
            CheckResult(
                name=name,
                state=check_state(str(run.get("status")), _str(run.get("conclusion"))),
                url=_str(run.get("html_url")) or _str(run.get("details_url")),
                detail=_str(run.get("conclusion")) or str(run.get("status")),
            )
            for name, run in sorted(latest.items())
        ]

    async def statuses(
        self, repository: str, ref: str, call: SourceCall | None = None
    ) -> list[CheckResult]:
        what = f"reading the combined status of {ref[:12]} in {repository}"
        body = await self._json(STATUS, what, call, repository, {"per_page": PER_PAGE}, ref=ref)
        raw = body.get("statuses") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            raise _unreadable(what, "statuses is not a list")
        found: list[CheckResult] = []
        for status in raw:
            if not isinstance(status, dict) or not isinstance(status.get("context"), str):
                raise _unreadable(what, "a status has no context")
            state = str(status.get("state"))
            found.append(
                CheckResult(
                    name=status["context"],
                    state=check_state("pending" if state == "pending" else "completed", state),
                    url=_str(status.get("target_url")),
                    detail=state,
                    kind="status",
                )
            )
        return found

    # -- pull requests ----------------------------------------------------------------------

    async def pulls_for_commit(
        self, repository: str, sha: str, call: SourceCall | None = None
    ) -> list[PullRequest]:
        what = f"listing the pull requests of {sha[:12]} in {repository}"
        pulls = await self._pages(PULLS, what, call, repository, None, commit_sha=sha)
        found = []
        for pull in pulls:
            if not isinstance(pull, dict) or not isinstance(pull.get("number"), int):
                raise _unreadable(what, "a pull request has no number")
            found.append(
                PullRequest(
                    number=pull["number"],
                    url=_str(pull.get("html_url")) or "",
                    title=_str(pull.get("title")) or "",
                    author=_login(pull.get("user")),
                    merged=pull.get("merged_at") is not None,
                )
            )
        return found

    async def reviews(
        self, repository: str, number: int, call: SourceCall | None = None
    ) -> list[Review]:
        what = f"listing the reviews of pull request #{number} in {repository}"
        raw = await self._pages(REVIEWS, what, call, repository, None, pull_number=str(number))
        found = []
        for review in raw:
            if not isinstance(review, dict) or not isinstance(review.get("state"), str):
                raise _unreadable(what, "a review has no state")
            found.append(
                Review(
                    reviewer=_login(review.get("user")),
                    state=review["state"],
                    commit_id=_str(review.get("commit_id")),
                    submitted_at=_time(review.get("submitted_at")),
                )
            )
        return found

    # -- comparisons ------------------------------------------------------------------------

    async def compare(
        self, repository: str, base: str, head: str, call: SourceCall | None = None
    ) -> Comparison:
        what = f"comparing {base[:12]}...{head[:12]} in {repository}"
        basehead = f"{base}...{head}"

        async def page(number: int) -> tuple[dict[str, Any], list[CommitSummary]]:
            query = {"per_page": PER_PAGE, "page": number}
            body = await self._json(COMPARE, what, call, repository, query, basehead=basehead)
            if not isinstance(body, dict) or not isinstance(body.get("commits"), list):
                raise _unreadable(what, "commits is not a list")
            return body, [_commit(item, what) for item in body["commits"]]

        body, commits = await page(1)
        # oldest first, a page at a time: the newest are on the last pages
        pages = -(-_int(body.get("total_commits")) // PER_PAGE)
        if pages == 2:
            commits += (await page(2))[1]
        elif pages > 2:  # the last two pages hold the newest 100 or more
            commits = (await page(pages - 1))[1] + (await page(pages))[1]
        return Comparison(
            status=_str(body.get("status")) or "",
            ahead_by=_int(body.get("ahead_by")),
            behind_by=_int(body.get("behind_by")),
            total_commits=_int(body.get("total_commits")),
            commits=tuple(commits),
            url=_str(body.get("html_url")),
        )

    # -- contents ---------------------------------------------------------------------------

    async def _contents(
        self, repository: str, path: str, ref: str, what: str, call: SourceCall | None
    ) -> Any:
        response = await self._get(
            CONTENTS,
            what,
            call,
            repository,
            {"ref": ref},
            {"path": path.strip("/")},
            missing_ok=True,
        )
        return None if response is None else _body(response, what)

    async def file(
        self, repository: str, path: str, ref: str, call: SourceCall | None = None
    ) -> RepoFile | None:
        what = f"reading {path} at {ref[:12]} in {repository}"
        body = await self._contents(repository, path, ref, what, call)
        if body is None or not isinstance(body, dict) or body.get("type") != "file":
            return None
        if body.get("encoding") != "base64" or not isinstance(body.get("content"), str):
            raise SourceRejected(f"{what}: the file is too large for GitHub's contents API")
        try:
            content = base64.b64decode(body["content"], validate=False)
        except (binascii.Error, ValueError) as exc:
            raise _unreadable(what, "the content is not base64") from exc
        return RepoFile(
            path=_str(body.get("path")) or path, sha=_str(body.get("sha")) or "", content=content
        )

    async def folder(
        self, repository: str, path: str, ref: str, call: SourceCall | None = None
    ) -> list[RepoEntry] | None:
        what = f"listing {path} at {ref[:12]} in {repository}"
        body = await self._contents(repository, path, ref, what, call)
        if body is None or not isinstance(body, list):
            return None
        entries = []
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                raise _unreadable(what, "an entry has no path")
            entries.append(
                RepoEntry(
                    path=item["path"],
                    name=_str(item.get("name")) or item["path"].rsplit("/", 1)[-1],
                    kind=_str(item.get("type")) or "file",
                    sha=_str(item.get("sha")) or "",
                    url=_str(item.get("html_url")),
                )
            )
        return sorted(entries, key=lambda e: e.name)


def _commit(item: Any, what: str) -> CommitSummary:
    if not isinstance(item, dict) or not isinstance(item.get("sha"), str):
        raise _unreadable(what, "a commit has no sha")
    inner = _dict(item.get("commit"))
    message = _str(inner.get("message")) or ""
    git_author = _dict(inner.get("author"))
    return CommitSummary(
        sha=item["sha"],
        title=message.splitlines()[0] if message else "",
        author=_login(item.get("author")) or _str(git_author.get("name")),
        url=_str(item.get("html_url")),
    )


def _body(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise _unreadable(what, "the body is not JSON") from exc


def _unreadable(what: str, why: str) -> SourceUnavailable:
    return SourceUnavailable(f"GitHub's answer to {what} could not be read: {why}")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _login(user: Any) -> str | None:
    return _str(user.get("login")) if isinstance(user, dict) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


__all__ = ["GitHubClient", "split_repository"]
