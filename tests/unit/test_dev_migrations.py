"""`releasebot dev` shows a release with D1 migrations: its config points both tax-api
environments at a demo repository whose migrations the lint passes."""

from __future__ import annotations

from pathlib import Path

from bot.cloudflare.sim_state import EXAMPLE_DATABASE_ID, EXAMPLE_STAGING_DATABASE_ID
from bot.config import parse_config
from bot.d1.folder import read_folder
from bot.d1.lint import SqliteLinter
from bot.dev.devserver import DEMO_MIGRATIONS, demo_repo, dev_config


def test_the_dev_config_has_the_demo_migrations(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path / "repo")
    config = parse_config(dev_config("http://127.0.0.1:3001", repo=repo))
    envs = config.services["tax-api"].environments

    assert envs["staging"].d1_database_id == EXAMPLE_STAGING_DATABASE_ID
    assert envs["production"].d1_database_id == EXAMPLE_DATABASE_ID
    for env in envs.values():
        assert env.migrations is not None and env.migrations.path == str(repo)
    files = read_folder(repo / "migrations")
    assert [f.name for f in files] == sorted(DEMO_MIGRATIONS)
    assert SqliteLinter().lint_all(files) == {name: [] for name in DEMO_MIGRATIONS}
    # without a demo repository (the browser tests' stack) the migrations are left out
    plain = parse_config(dev_config("http://127.0.0.1:3001"))
    assert plain.services["tax-api"].environments["staging"].migrations is None


def test_the_demo_keeps_files_a_person_changed(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path / "repo")
    mine = repo / "migrations" / "0001_create_returns.sql"
    mine.write_text("CREATE TABLE mine (id INTEGER);")
    demo_repo(tmp_path / "repo")
    assert mine.read_text() == "CREATE TABLE mine (id INTEGER);"
