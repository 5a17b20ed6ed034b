"""Where a version came from: the Workers Build that made it (commit, branch, repository,
pull request, outcome) when Cloudflare's Workers Builds knows one, else what the version's
own annotations say (``workers/tag``, ``workers/message``, ``workers/triggered_by``).

    source = resolve_source(version, builds.get(version.id))
    source.commit_sha   # "9f8e7d6c..." from the build, or None
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bot.engine.model import WorkerVersion
from bot.engine.source import VersionBuild

BUILD = "build"
ANNOTATIONS = "annotations"
# workers/triggered_by of a version a secret change made (wrangler secret put, the dashboard):
# the same code under new secrets, never a release of its own
SECRET_TRIGGERS = frozenset({"secret", "secret_put", "secret_delete", "secrets"})


@dataclass(frozen=True, slots=True)
class VersionSource:
    origin: str  # "build" or "annotations"
    tag: str | None = None
    message: str | None = None
    triggered_by: str | None = None
    commit_sha: str | None = None
    branch: str | None = None
    repository: str | None = None
    pull_request_url: str | None = None
    build_outcome: str | None = None
    author: str | None = None

    @property
    def from_build(self) -> bool:
        return self.origin == BUILD

    @property
    def secret_change(self) -> bool:
        return (self.triggered_by or "").lower() in SECRET_TRIGGERS

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> VersionSource | None:
        if not data:
            return None

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return cls(
            origin=text("origin") or ANNOTATIONS,
            tag=text("tag"),
            message=text("message"),
            triggered_by=text("triggered_by"),
            commit_sha=text("commit_sha"),
            branch=text("branch"),
            repository=text("repository"),
            pull_request_url=text("pull_request_url"),
            build_outcome=text("build_outcome"),
            author=text("author"),
        )


def resolve_source(version: WorkerVersion, build: VersionBuild | None) -> VersionSource:
    """The build's facts when there is a build, the annotations always."""
    if build is None:
        return VersionSource(ANNOTATIONS, version.tag, version.message, version.triggered_by)
    return VersionSource(
        BUILD,
        version.tag,
        version.message,
        version.triggered_by,
        commit_sha=build.commit_sha,
        branch=build.branch,
        repository=build.repository,
        pull_request_url=build.pull_request_url,
        build_outcome=build.outcome,
        author=build.author,
    )
