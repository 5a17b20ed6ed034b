"""Migration files from the repository on GitHub at the version's commit, through GitHub's
contents API: the ``.sql`` files directly in ``migrations_dir`` (wrangler's layout).

The commit is the one Workers Builds says made the version; a version that no build made is
read at its ``workers/tag`` annotation (a git tag of that name). File contents are kept by
their blob sha, so a file is fetched once however often it is planned."""

from __future__ import annotations

from collections import OrderedDict

from bot.config import Config
from bot.engine.errors import MigrationSourceError, SourceError
from bot.engine.migrations import MigrationFile, wrangler_order
from bot.engine.model import Release
from bot.engine.source import CodeHost
from bot.engine.stages.checks import HostFor

MAX_FILE_BYTES = 1_000_000  # as for a local folder
MAX_FILES = 1_000  # GitHub's contents API lists at most 1,000 entries of a folder
CACHED_BLOBS = 2_000


class RepositorySource:
    def __init__(self, config: Config, hosts: HostFor) -> None:
        self.config = config
        self.hosts = hosts
        self._blobs: OrderedDict[str, str] = OrderedDict()

    async def migrations(self, release: Release) -> list[MigrationFile]:
        env = self.config.services[release.service].environments[release.environment]
        if env.migrations is None:
            return []
        github = self.config.migrations_github(release.service, release.environment)
        if github is None:
            raise MigrationSourceError("no GitHub repository is configured for the migrations")
        host = self.hosts(github)
        if host is None:
            raise MigrationSourceError(
                f"the GitHub token in ${github.token_env} is not set; the migrations in "
                f"{github.repository} cannot be read"
            )
        ref = self.ref_of(release)
        folder = env.migrations.migrations_dir.strip("/")
        try:
            return await self._read(host, github.repository, folder, ref)
        except SourceError as exc:
            raise MigrationSourceError(
                f"could not read {folder}/ at {ref[:12]} in {github.repository}: {exc}"
            ) from None

    @staticmethod
    def ref_of(release: Release) -> str:
        """The commit Workers Builds names for the version, else its tag."""
        source = release.source or {}
        commit = source.get("commit_sha")
        if isinstance(commit, str) and commit:
            return commit
        tag = source.get("tag") or release.version_tag
        if isinstance(tag, str) and tag:
            return tag
        raise MigrationSourceError(
            f"version {release.version_id[:8]} names no commit (no Workers Build made it) and "
            "no tag, so its migrations cannot be read from the repository"
        )

    async def _read(
        self, host: CodeHost, repository: str, folder: str, ref: str
    ) -> list[MigrationFile]:
        entries = await host.folder(repository, folder, ref)
        if entries is None:
            raise MigrationSourceError(f"no migrations folder {folder}/ at {ref[:12]}")
        wanted = [e for e in entries if e.kind == "file" and e.name.endswith(".sql")]
        if len(wanted) >= MAX_FILES:
            raise MigrationSourceError(
                f"{folder}/ holds {len(wanted)} files; GitHub lists at most {MAX_FILES}"
            )
        files = []
        for entry in wanted:
            text = self._blobs.get(entry.sha) if entry.sha else None
            if text is None:
                text = await self._fetch(host, repository, entry.path, entry.name, ref)
                if entry.sha:
                    self._remember(entry.sha, text)
            files.append(MigrationFile(entry.name, text, url=entry.url))
        return wrangler_order(files)

    async def _fetch(self, host: CodeHost, repository: str, path: str, name: str, ref: str) -> str:
        found = await host.file(repository, path, ref)
        if found is None:
            raise MigrationSourceError(f"{name} is listed but could not be read at {ref[:12]}")
        if len(found.content) > MAX_FILE_BYTES:
            raise MigrationSourceError(f"{name} is larger than {MAX_FILE_BYTES} bytes")
        try:
            return found.content.decode("utf-8")
        except UnicodeDecodeError:
            raise MigrationSourceError(f"{name} is not UTF-8 text") from None

    def _remember(self, sha: str, text: str) -> None:
        self._blobs[sha] = text
        self._blobs.move_to_end(sha)
        while len(self._blobs) > CACHED_BLOBS:
            self._blobs.popitem(last=False)
