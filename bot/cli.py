"""The ``releasebot`` command line (typer). Each command builds what it needs and exits with a
clear line per problem, never a traceback, for anything an operator can get wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Slack release bot for Cloudflare Workers."
)
db_app = typer.Typer(no_args_is_help=True, help="Storage schema.")
config_app = typer.Typer(no_args_is_help=True, help="The config file.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
sim_app = typer.Typer(no_args_is_help=True, help="Simulators for offline use.")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")
app.add_typer(sim_app, name="sim")


def _fail(problems: list[str], code: int = 2) -> None:
    for line in problems:
        typer.echo(line, err=True)
    raise typer.Exit(code)


@config_app.command("check")
def config_check(
    path: Path | None = typer.Argument(None, help="config file (default: RELEASEBOT_CONFIG)"),
) -> None:
    """Validate the config file and print every problem with its key path."""
    from bot.config import ConfigError, load_config
    from bot.settings import SettingsError, load_settings

    if path is None:
        try:
            path = Path(load_settings().releasebot_config)
        except SettingsError as exc:
            _fail(exc.problems)
            return
    try:
        config = load_config(path)
    except ConfigError as exc:
        _fail(exc.problems, code=1)
        return
    envs = sum(len(s.environments) for s in config.services.values())
    typer.echo(
        f"{path}: OK ({len(config.services)} services, {envs} environments, "
        f"{len(config.policies)} policies)"
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
