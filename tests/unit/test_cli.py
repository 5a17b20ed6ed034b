"""The command line's own surface: ``--version``, the environment listed by ``run --help``,
and ``audit export --format`` refusing anything but its choices before doing any work."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bot import __version__
from bot.cli import app
from bot.settings import ENVIRONMENT

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"releasebot {__version__}\n"


def test_run_help_lists_every_variable_it_reads() -> None:
    result = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name, meaning in ENVIRONMENT.items():
        assert f"{name}: {meaning}" in result.output, name


@pytest.mark.parametrize("fmt", ["xml", "JSONL", ""])
def test_export_format_is_a_choice(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A database that would fail if reached: the option is refused before anything opens it.
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = runner.invoke(app, ["audit", "export", "--format", fmt])
    assert result.exit_code == 2
    assert "'jsonl'" in result.output and "'csv'" in result.output
    assert "Invalid value for '--format'" in result.output
