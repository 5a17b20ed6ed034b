"""D1 migrations read from the repository on GitHub at the version's commit (the stand-in,
held to GitHub's REST description): the files of that commit and no other, a version without
a build read at its tag, each file fetched once, and clear errors when they cannot be read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, GitHubSource, parse_config
from bot.d1.sources import ConfiguredSource
from bot.engine.errors import MigrationSourceError
from bot.engine.model import Release
from bot.engine.source import CodeHost
from bot.github.client import GitHubClient
from bot.github.standin_state import GitHubState
from tests.fixtures.cloudflare import RecordingSleep

pytest_plugins = ["tests.fixtures.github"]

REPO = "battleborn/tax-api"
DB = "0b5c0a52-0d7e-4b8e-9a61-7c1d2e3f4a02"
Factory = Callable[..., tuple[GitHubClient, RecordingSleep]]


def config(migrations: dict[str, Any], checks: bool = True) -> dict[str, Any]:
    production: dict[str, Any] = {"approvals_required": 0}
    if checks:
        production |= {"approvals_required": 1, "approvers": ["U0ALICE"]}
        production["checks"] = {
            "github": {"repository": REPO, "token_env": "RB_TEST_GH"},
            "required": ["ci"],
        }
    return {
        "slack": {"release_channel": "C0RELEASES", "audit_channel": "C0AUDIT"},
        "cloudflare": {"account_id": "0123456789abcdef0123456789abcdef"},
        "policies": {"production": production},
        "services": {
            "tax-api": {
                "environments": {
                    "production": {
                        "script": "tax-api",
                        "policy": "production",
                        "d1_database_id": DB,
                        "migrations": migrations,
                    }
                }
            }
        },
    }


def release(source: dict[str, Any] | None, tag: str | None = None) -> Release:
    return Release(
        service="tax-api",
        environment="production",
        script="tax-api",
        version_id="e443df78-0000-4000-8000-000000000000",
        requested_by="U0CAROL",
        policy="production",
        version_tag=tag,
        source=source,
    )


def built_from(sha: str) -> dict[str, Any]:
    return {"origin": "build", "commit_sha": sha, "repository": REPO, "branch": "main"}


def contents_requests(state: GitHubState) -> list[str]:
    return [r["path"] for r in state.requests if "/contents/" in r["path"]]


async def test_the_files_of_the_versions_commit_in_wranglers_order(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, _ = gh_client_factory()
    asked: list[GitHubSource] = []

    def hosts(source: GitHubSource) -> CodeHost | None:
        asked.append(source)
        return client

    source = ConfiguredSource(parse_config(config({"source": "github"})), hosts)
    heads = gh_state.tags[REPO]

    older = await source.migrations(release(built_from(heads["v1.4.1"])))
    assert [f.name for f in older] == ["0001_create_filings.sql"]
    newer = await source.migrations(release(built_from(heads["v1.4.2"])))
    assert [f.name for f in newer] == ["0001_create_filings.sql", "0002_receipts_index.sql"]
    assert newer[1].sql == "CREATE INDEX filings_id ON filings(id);\n"
    assert newer[1].url == (
        f"https://github.com/{REPO}/blob/{heads['v1.4.2']}/migrations/0002_receipts_index.sql"
    )
    # the policy's checks.github names the repository and the token
    assert {(a.repository, a.token_env) for a in asked} == {(REPO, "RB_TEST_GH")}


async def test_a_version_no_build_made_is_read_at_its_tag(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, _ = gh_client_factory()
    source = ConfiguredSource(parse_config(config({"source": "github"})), lambda _: client)
    annotated = {"origin": "annotations", "tag": "v1.4.1", "triggered_by": "upload"}

    files = await source.migrations(release(annotated, tag="v1.4.1"))
    assert [f.name for f in files] == ["0001_create_filings.sql"]

    with pytest.raises(MigrationSourceError, match=r"names no commit .* and no tag"):
        await source.migrations(release({"origin": "annotations"}))


async def test_each_file_is_fetched_once_by_its_blob(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, _ = gh_client_factory()
    source = ConfiguredSource(parse_config(config({"source": "github"})), lambda _: client)
    head = gh_state.tags[REPO]["v1.4.2"]

    await source.migrations(release(built_from(head)))
    first = len(contents_requests(gh_state))
    assert first == 3  # the folder, then each of its two files
    again = await source.migrations(release(built_from(head)))
    assert len(contents_requests(gh_state)) == first + 1  # the listing only
    assert [f.name for f in again] == ["0001_create_filings.sql", "0002_receipts_index.sql"]

    # a later commit that changes a file: the new content is read, not the remembered one
    changed = gh_state.commit(
        REPO,
        "Index receipts by user",
        author="ana",
        files={"migrations/0002_receipts_index.sql": b"CREATE INDEX filings_by ON filings(id);\n"},
    )
    [_, second] = await source.migrations(release(built_from(changed)))
    assert second.sql == "CREATE INDEX filings_by ON filings(id);\n"


async def test_what_cannot_be_read_is_said_plainly(
    gh_state: GitHubState, gh_client_factory: Factory
) -> None:
    client, _ = gh_client_factory()
    head = gh_state.tags[REPO]["v1.4.2"]
    elsewhere = parse_config(config({"source": "github", "migrations_dir": "db/migrations"}))
    with pytest.raises(MigrationSourceError, match=r"no migrations folder db/migrations/"):
        await ConfiguredSource(elsewhere, lambda _: client).migrations(release(built_from(head)))

    no_token = ConfiguredSource(parse_config(config({"source": "github"})), lambda _: None)
    with pytest.raises(MigrationSourceError, match=r"token in \$RB_TEST_GH is not set"):
        await no_token.migrations(release(built_from(head)))

    unknown = ConfiguredSource(parse_config(config({"source": "github"})), lambda _: client)
    with pytest.raises(
        MigrationSourceError, match="no migrations folder migrations/ at 000000000000"
    ):
        await unknown.migrations(release(built_from("0" * 40)))


async def test_a_local_folder_is_still_read_from_disk(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_users.sql").write_text("CREATE TABLE users (id INTEGER);")
    local = parse_config(config({"path": str(tmp_path)}, checks=False))
    files = await ConfiguredSource(local, lambda _: None).migrations(release(None))
    assert [f.name for f in files] == ["0001_users.sql"]


def test_the_source_is_named_in_the_config() -> None:
    own = {"source": "github", "github": {"repository": "battleborn/db", "token_env": "DB_GH"}}
    cfg = parse_config(config(own, checks=False))
    found = cfg.migrations_github("tax-api", "production")
    assert found is not None and (found.repository, found.token_env) == ("battleborn/db", "DB_GH")

    with pytest.raises(ConfigError, match="source: github needs 'github'"):
        parse_config(config({"source": "github"}, checks=False))
    with pytest.raises(ConfigError, match="need its 'path'"):
        parse_config(config({"migrations_dir": "migrations"}, checks=False))
    with pytest.raises(ConfigError, match="not a local 'path'"):
        parse_config(config({"source": "github", "path": "/srv/tax-api"}))
