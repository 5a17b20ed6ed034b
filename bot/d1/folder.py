"""Migration files from a folder on the bot's host (a checkout of the repository), in
wrangler's layout: the ``.sql`` files directly in ``<path>/<migrations_dir>``.

The folder is read as it is when asked, not at the version's commit: keep the checkout at
what is being released (or use the repository source, which reads the commit)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.config import Config
from bot.engine.errors import MigrationSourceError
from bot.engine.migrations import MigrationFile, wrangler_order
from bot.engine.model import Release

MAX_FILE_BYTES = 1_000_000  # D1 takes at most 100 KB per statement; a larger file is a mistake


class FolderSource:
    def __init__(self, config: Config, base: Path | None = None) -> None:
        self.config = config
        self.base = base or Path.cwd()

    def folder(self, service: str, environment: str) -> Path | None:
        env = self.config.services[service].environments[environment]
        if env.migrations is None or env.migrations.path is None:
            return None
        return self.base / env.migrations.path / env.migrations.migrations_dir

    async def migrations(self, release: Release) -> list[MigrationFile]:
        folder = self.folder(release.service, release.environment)
        if folder is None:
            return []
        return await asyncio.to_thread(read_folder, folder)


def read_folder(folder: Path) -> list[MigrationFile]:
    if not folder.is_dir():
        raise MigrationSourceError(f"no migrations folder at {folder}")
    files = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql") or not entry.is_file():
            continue
        if entry.stat().st_size > MAX_FILE_BYTES:
            raise MigrationSourceError(f"{entry.name} is larger than {MAX_FILE_BYTES} bytes")
        try:
            files.append(MigrationFile(entry.name, entry.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise MigrationSourceError(f"could not read {entry.name}: {exc}") from None
    return wrangler_order(files)
