"""An environment's migration files from where its ``migrations.source`` says: a folder on
the bot's host (``local``) or the repository on GitHub at the version's commit (``github``)."""

from __future__ import annotations

from pathlib import Path

from bot.config import Config
from bot.d1.folder import FolderSource
from bot.d1.repository import RepositorySource
from bot.engine.migrations import MigrationFile
from bot.engine.model import Release
from bot.engine.stages.checks import HostFor


class ConfiguredSource:
    def __init__(self, config: Config, hosts: HostFor, base: Path | None = None) -> None:
        self.config = config
        self.local = FolderSource(config, base)
        self.github = RepositorySource(config, hosts)

    async def migrations(self, release: Release) -> list[MigrationFile]:
        env = self.config.services[release.service].environments[release.environment]
        if env.migrations is None:
            return []
        if env.migrations.source == "github":
            return await self.github.migrations(release)
        return await self.local.migrations(release)
