"""A local stand-in for GitHub's REST API, for ``releasebot dev`` and the tests.

It serves the six operations the bot reads (``bot.github.client``) at the root, so the bot's
``GITHUB_API_URL`` is ``http://HOST:PORT``, with the shapes of GitHub's REST description:
every request and answer is checked against ``openapi_subset.json`` when asked, and problems
are kept in ``state.contract_violations``. Every answer carries GitHub's ``x-ratelimit-*``
headers; ``state.limit(...)`` makes the next requests meet a primary (403, remaining 0, a
reset time) or secondary (403, ``retry-after``) rate limit. ``/__github/...`` steers it.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.github.contract import load
from bot.github.standin_state import (
    RATE_LIMIT,
    GhCommit,
    GhPull,
    GhRepo,
    GhRun,
    GitHubState,
    StandInError,
    blob_sha,
)
from bot.openapi import Contract

log = logging.getLogger("releasebot.github.standin")
DOCS = "https://docs.github.com/rest"


def _time(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _error(status: int, message: str, docs: str = DOCS) -> tuple[int, Any]:
    return status, {"message": message, "documentation_url": docs, "status": str(status)}


class _Shapes:
    """GitHub's JSON for the stand-in's records; ``base`` is the API's own URL."""

    def __init__(self, base: str, repo: GhRepo) -> None:
        self.base = base.rstrip("/")
        self.repo = repo
        self.api = f"{self.base}/repos/{repo.full_name}"
        self.web = f"https://github.com/{repo.full_name}"

    def user(self, login: str | None) -> dict[str, Any] | None:
        if login is None:
            return None
        return {
            "login": login,
            "id": abs(hash(login)) % 10_000_000,
            "node_id": f"U_{login}",
            "avatar_url": f"https://avatars.githubusercontent.com/{login}",
            "url": f"{self.base}/users/{login}",
            "html_url": f"https://github.com/{login}",
            "type": "User",
            "site_admin": False,
        }

    def run(self, sha: str, run: GhRun) -> dict[str, Any]:
        return {
            "id": run.id,
            "node_id": f"CR_{run.id}",
            "head_sha": sha,
            "external_id": None,
            "url": f"{self.api}/check-runs/{run.id}",
            "html_url": f"{self.web}/runs/{run.id}",
            "details_url": f"{self.web}/runs/{run.id}",
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": _time(run.started_at),
            "completed_at": _time(run.completed_at),
            "name": run.name,
            "pull_requests": [],
        }

    def commit(self, commit: GhCommit) -> dict[str, Any]:
        person = {
            "name": commit.author_name,
            "email": f"{commit.author_login or 'someone'}@example.com",
            "date": _time(commit.date),
        }
        return {
            "url": f"{self.api}/commits/{commit.sha}",
            "sha": commit.sha,
            "node_id": f"C_{commit.sha[:12]}",
            "html_url": f"{self.web}/commit/{commit.sha}",
            "comments_url": f"{self.api}/commits/{commit.sha}/comments",
            "commit": {
                "url": f"{self.api}/git/commits/{commit.sha}",
                "author": person,
                "committer": person,
                "message": commit.message,
                "comment_count": 0,
                "tree": {
                    "sha": commit.sha[::-1],
                    "url": f"{self.api}/git/trees/{commit.sha[::-1]}",
                },
            },
            "author": self.user(commit.author_login),
            "committer": self.user(commit.author_login),
            "parents": (
                [
                    {
                        "sha": commit.parent,
                        "url": f"{self.api}/commits/{commit.parent}",
                        "html_url": f"{self.web}/commit/{commit.parent}",
                    }
                ]
                if commit.parent
                else []
            ),
        }

    def pull(self, pull: GhPull) -> dict[str, Any]:
        html = f"{self.web}/pull/{pull.number}"
        branch = {
            "label": f"{self.repo.owner}:feature-{pull.number}",
            "ref": f"feature-{pull.number}",
            "sha": pull.head_sha,
        }
        base = {"label": f"{self.repo.owner}:main", "ref": "main", "sha": pull.commits[0]}
        return {
            "url": f"{self.api}/pulls/{pull.number}",
            "id": 500_000 + pull.number,
            "node_id": f"PR_{pull.number}",
            "html_url": html,
            "number": pull.number,
            "state": "closed" if pull.merged_at else "open",
            "locked": False,
            "title": pull.title,
            "user": self.user(pull.author),
            "body": None,
            "created_at": _time(pull.created_at),
            "updated_at": _time(pull.merged_at or pull.created_at),
            "closed_at": _time(pull.merged_at),
            "merged_at": _time(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "head": branch,
            "base": base,
            "author_association": "MEMBER",
            "draft": False,
        }

    def file_entry(self, path: str, content: bytes | None, sha: str) -> dict[str, Any]:
        name = path.rsplit("/", 1)[-1]
        url = f"{self.api}/contents/{path}?ref={sha}"
        entry: dict[str, Any] = {
            "type": "file" if content is not None else "dir",
            "size": len(content) if content is not None else 0,
            "name": name,
            "path": path,
            "sha": blob_sha(path, content),
            "url": url,
            "git_url": None,
            "html_url": f"{self.web}/blob/{sha}/{path}",
            "download_url": None,
            "_links": {"git": None, "html": f"{self.web}/blob/{sha}/{path}", "self": url},
        }
        return entry


class _Api:
    def __init__(self, state: GitHubState, token: str | None, contract: Contract | None) -> None:
        self.state = state
        self.token = token
        self.contract = contract

    async def handle(self, request: Request) -> Response:
        method, path = request.method, request.url.path
        problems: list[str] = []
        op = None
        if self.contract is not None:
            found = self.contract.find(method, path)
            if found is None:
                problems.append(f"{method} {path}: no such operation in the contract")
            else:
                op, params = found
                problems += self.contract.check_request(
                    op, params, request.query_params.multi_items(), request.headers, b""
                )
        status, payload, headers = self._operate(request, method, path)
        if self.contract is not None and op is not None:
            problems += self.contract.check_response(op, status, payload)
        with self.state.lock:
            self.state.requests.append(
                {
                    "method": method,
                    "path": path,
                    "query": str(request.query_params),
                    "status": status,
                }
            )
            self.state.contract_violations.extend(problems)
        for problem in problems:
            log.warning("contract violation: %s", problem)
        return JSONResponse(payload, status_code=status, headers=headers)

    def _operate(self, request: Request, method: str, path: str) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        remaining, window_ends = state.spend()
        headers = {
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(int(window_ends.timestamp())),
            "x-ratelimit-used": str(RATE_LIMIT - remaining),
            "x-ratelimit-resource": "core",
        }
        given = request.headers.get("authorization")
        if self.token is not None and given != f"Bearer {self.token}":
            return (*_error(401, "Bad credentials"), headers)
        limit = state.take_limit()
        if limit is not None:
            if limit.kind == "primary":
                reset = state.clock().timestamp() + limit.reset_in
                headers |= {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(reset) + 1)}
                return (*_error(limit.status, "API rate limit exceeded for user ID 1."), headers)
            headers["retry-after"] = str(int(limit.reset_in))
            return (
                *_error(
                    limit.status,
                    "You have exceeded a secondary rate limit. "
                    "Please wait a few minutes before you try again.",
                ),
                headers,
            )
        if method != "GET":
            return (*_error(404, "Not Found"), headers)
        parts = path.strip("/").split("/", 4)
        if len(parts) < 4 or parts[0] != "repos":
            return (*_error(404, "Not Found"), headers)
        try:
            repo = state.repo(f"{parts[1]}/{parts[2]}")
        except StandInError:
            return (*_error(404, "Not Found"), headers)
        rest = "/".join(parts[3:])
        shapes = _Shapes(str(request.base_url), repo)
        with state.lock:
            status, payload = self._route(shapes, repo, rest, request)
        if isinstance(payload, dict) and "__link" in payload:
            link = payload.pop("__link")
            if link:
                headers["link"] = link
        return status, payload, headers

    def _route(self, shapes: _Shapes, repo: GhRepo, rest: str, request: Request) -> tuple[int, Any]:
        state = self.state
        query = request.query_params
        bits = rest.split("/")
        if bits[0] == "commits" and len(bits) == 3:
            commit = state.find_commit(repo, bits[1])
            if commit is None:
                return _error(422, f"No commit found for SHA: {bits[1]}")
            if bits[2] == "check-runs":
                runs = [shapes.run(commit.sha, r) for r in state.runs_of(repo, commit.sha)]
                if query.get("check_name"):
                    runs = [r for r in runs if r["name"] == query["check_name"]]
                return 200, {"total_count": len(runs), "check_runs": runs}
            if bits[2] == "status":
                return 200, self._combined(shapes, repo, commit)
            if bits[2] == "pulls":
                pulls = [shapes.pull(p) for p in repo.pulls if commit.sha in p.commits]
                return 200, pulls
        if bits[0] == "pulls" and len(bits) == 3 and bits[2] == "reviews" and bits[1].isdigit():
            number = int(bits[1])
            if not 1 <= number <= len(repo.pulls):
                return _error(404, "Not Found")
            pull = repo.pulls[number - 1]
            return 200, [self._review(shapes, pull, r) for r in pull.reviews]
        if bits[0] == "compare" and len(bits) == 2:
            return self._compare(shapes, repo, bits[1], query)
        if bits[0] == "contents" and len(bits) >= 2:
            return self._contents(shapes, repo, "/".join(bits[1:]), query.get("ref"))
        return _error(404, "Not Found")

    def _combined(self, shapes: _Shapes, repo: GhRepo, commit: GhCommit) -> dict[str, Any]:
        found = repo.statuses.get(commit.sha, [])
        states = {s.state for s in found}
        overall = (
            "failure"
            if states & {"failure", "error"}
            else "pending"
            if "pending" in states or not found
            else "success"
        )
        return {
            "state": overall,
            "statuses": [
                {
                    "url": f"{shapes.api}/statuses/{commit.sha}",
                    "avatar_url": None,
                    "id": s.id,
                    "node_id": f"S_{s.id}",
                    "state": s.state,
                    "description": None,
                    "target_url": f"{shapes.web}/actions/runs/{s.id}",
                    "context": s.context,
                    "created_at": _time(s.created_at),
                    "updated_at": _time(s.updated_at),
                }
                for s in found
            ],
            "sha": commit.sha,
            "total_count": len(found),
            "repository": {"full_name": repo.full_name},
            "commit_url": f"{shapes.api}/commits/{commit.sha}",
            "url": f"{shapes.api}/commits/{commit.sha}/status",
        }

    def _review(self, shapes: _Shapes, pull: GhPull, review: Any) -> dict[str, Any]:
        html = f"{shapes.web}/pull/{pull.number}#pullrequestreview-{review.id}"
        return {
            "id": review.id,
            "node_id": f"PRR_{review.id}",
            "user": shapes.user(review.user),
            "body": "",
            "state": review.state,
            "html_url": html,
            "pull_request_url": f"{shapes.api}/pulls/{pull.number}",
            "_links": {
                "html": {"href": html},
                "pull_request": {"href": f"{shapes.api}/pulls/{pull.number}"},
            },
            "submitted_at": _time(review.submitted_at),
            "commit_id": review.commit_id,
            "author_association": "MEMBER",
        }

    def _compare(self, shapes: _Shapes, repo: GhRepo, basehead: str, query: Any) -> tuple[int, Any]:
        """GitHub's comparison: without ``page``/``per_page`` at most 250 commits, oldest
        first; with either, that page of them (``per_page`` default 30, at most 100) and a
        ``Link`` to the next; ``total_commits`` counts them all."""
        base_ref, sep, head_ref = basehead.partition("...")
        base = self.state.find_commit(repo, base_ref) if sep else None
        head = self.state.find_commit(repo, head_ref) if sep else None
        if base is None or head is None:
            return _error(404, "Not Found")
        b, h = repo.history.index(base), repo.history.index(head)
        between = repo.history[b + 1 : h + 1] if h > b else []
        status = "identical" if b == h else "ahead" if h > b else "behind"
        listed, link = between[:250], None
        if "page" in query or "per_page" in query:
            try:
                page = max(1, int(query.get("page") or 1))
                per_page = min(100, max(1, int(query.get("per_page") or 30)))
            except ValueError:
                return _error(422, "Invalid page or per_page")
            listed = between[(page - 1) * per_page : page * per_page]
            if page * per_page < len(between):
                url = f"{shapes.api}/compare/{basehead}?per_page={per_page}&page={page + 1}"
                link = f'<{url}>; rel="next"'
        return 200, {
            "__link": link,
            "url": f"{shapes.api}/compare/{basehead}",
            "html_url": f"{shapes.web}/compare/{basehead}",
            "permalink_url": f"{shapes.web}/compare/{base.sha}...{head.sha}",
            "diff_url": f"{shapes.web}/compare/{basehead}.diff",
            "patch_url": f"{shapes.web}/compare/{basehead}.patch",
            "base_commit": shapes.commit(base),
            "merge_base_commit": shapes.commit(base if h >= b else head),
            "status": status,
            "ahead_by": max(0, h - b),
            "behind_by": max(0, b - h),
            "total_commits": len(between),
            "commits": [shapes.commit(c) for c in listed],
        }

    def _contents(
        self, shapes: _Shapes, repo: GhRepo, path: str, ref: str | None
    ) -> tuple[int, Any]:
        commit = (
            self.state.find_commit(repo, ref)
            if ref
            else (repo.history[-1] if repo.history else None)
        )
        if commit is None:
            return _error(404, f"No commit found for the ref {ref}")
        path = path.strip("/")
        if path in commit.files:
            content = commit.files[path]
            entry = shapes.file_entry(path, content, commit.sha)
            entry |= {"encoding": "base64", "content": base64.encodebytes(content).decode()}
            return 200, entry
        prefix = path + "/"
        children: dict[str, bytes | None] = {}
        for name, content in commit.files.items():
            if name.startswith(prefix):
                child, _, deeper = name[len(prefix) :].partition("/")
                children[prefix + child] = None if deeper else content
        if not children:
            return _error(404, "Not Found")
        return 200, [shapes.file_entry(p, c, commit.sha) for p, c in sorted(children.items())]


def control_routes(state: GitHubState) -> list[Route]:
    """``/__github/...``: read the state, and change checks, reviews and rate limits."""

    async def read(request: Request) -> Response:
        with state.lock:
            return JSONResponse(
                {
                    name: {
                        "commits": [{"sha": c.sha, "message": c.message} for c in repo.history],
                        "checks": {
                            sha: [
                                {"name": r.name, "status": r.status, "conclusion": r.conclusion}
                                for r in runs
                            ]
                            for sha, runs in repo.runs.items()
                        },
                    }
                    for name, repo in state.repos.items()
                }
            )

    async def change(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            what = request.path_params["what"]
            if what == "check":
                state.set_check(
                    body["repository"],
                    body["sha"],
                    body["name"],
                    body["status"],
                    body.get("conclusion"),
                )
            elif what == "status":
                state.set_status(body["repository"], body["sha"], body["context"], body["state"])
            elif what == "review":
                state.review(body["repository"], int(body["number"]), body["user"], body["state"])
            elif what == "limit":
                state.limit(
                    body.get("kind", "secondary"),
                    float(body.get("reset_in", 2)),
                    int(body.get("times", 1)),
                )
            else:
                return JSONResponse({"error": f"nothing to change called {what}"}, status_code=404)
        except (KeyError, ValueError, TypeError, IndexError, StandInError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True})

    return [
        Route("/__github/state", read, methods=["GET"]),
        Route("/__github/{what}", change, methods=["POST"]),
    ]


def create_standin(
    state: GitHubState | None = None, *, token: str | None = None, validate_contract: bool = False
) -> Starlette:
    """The stand-in over ``state``; with ``token`` every API request needs
    ``Authorization: Bearer <token>``. The state is also at ``app.state.github``."""
    state = state if state is not None else GitHubState()
    api = _Api(state, token, load() if validate_contract else None)
    app = Starlette(
        routes=[*control_routes(state), Route("/{path:path}", api.handle, methods=["GET", "POST"])],
        middleware=[
            Middleware(
                CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"]
            )
        ],
    )
    app.state.github = state
    return app
