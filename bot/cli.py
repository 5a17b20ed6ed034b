"""The ``releasebot`` command line (typer). Each command builds what it needs and exits with a
clear line per problem, never a traceback, for anything an operator can get wrong."""

from __future__ import annotations

import contextlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from bot import __version__
from bot.settings import ENVIRONMENT

if TYPE_CHECKING:
    from bot.config import Config
    from bot.settings import Settings
    from storage.audit import ChainReport

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


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"releasebot {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="print the version and exit",
    ),
) -> None:
    """Slack release bot for Cloudflare Workers."""


def _environment_help() -> str:
    # Typer's rich help rewraps paragraphs; one paragraph per variable keeps them apart.
    return "Environment:\n\n" + "\n\n".join(
        f"{name}: {meaning}" for name, meaning in ENVIRONMENT.items()
    )


def _fail(problems: list[str], code: int = 2) -> NoReturn:
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


def _settings_or_exit() -> Settings:
    from bot.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        _fail(exc.problems)


def _config_or_exit(path: str) -> Config:
    from bot.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        _fail(exc.problems)


def _upgrade_or_exit(url: str) -> None:
    from storage.db import StorageUnavailable, upgrade

    try:
        upgrade(url)
    except (StorageUnavailable, ValueError) as exc:
        _fail([str(exc).splitlines()[0] if str(exc) else type(exc).__name__])


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the storage schema migrations to DATABASE_URL."""
    from storage.db import describe

    settings = _settings_or_exit()
    _upgrade_or_exit(settings.database_url)
    typer.echo(f"{describe(settings.database_url)}: schema is current")


@app.command("run", epilog=_environment_help())
def run() -> None:
    """Serve the bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT."""
    import asyncio

    from bot.logs import configure
    from bot.serve import StartupError, serve

    settings = _settings_or_exit()
    problems = settings.problems_for_run()
    config = None
    try:
        from bot.config import ConfigError, load_config

        config = load_config(settings.releasebot_config)
    except ConfigError as exc:
        problems.extend(exc.problems)
    webhook_secrets: list[str] = []
    if config is not None:
        from bot.webhooks import load_credentials, secret_values

        credentials, webhook_problems = load_credentials(config.webhooks)
        problems.extend(webhook_problems)
        webhook_secrets = secret_values(credentials)
    if problems or config is None:
        _fail(problems)
        return
    configure(settings.log_level, settings.log_format, settings.secrets() + webhook_secrets)
    _upgrade_or_exit(settings.database_url)
    try:
        asyncio.run(serve(settings, config))
    except StartupError as exc:
        _fail([str(exc)])


@app.command("dev")
def dev(
    port: int = typer.Option(3000, envvar="PORT", help="the bot's HTTP port"),
    host: str = typer.Option(
        "127.0.0.1",
        envvar="HOST",
        help="the address the bot listens on (the simulators: 127.0.0.1)",
    ),
    data: Path = typer.Option(Path(".releasebot-dev"), help="folder for the SQLite file"),
    console: bool = typer.Option(True, help="the terminal console (off: serve only)"),
) -> None:
    """The whole product offline: bot + SQLite + Cloudflare simulator + a Slack stand-in."""
    import asyncio

    from bot.dev.devserver import prepare, run_dev
    from bot.serve import StartupError, listen
    from bot.settings import listen_address

    try:
        host = listen_address(host)
    except ValueError as exc:
        _fail([f"HOST: {exc}"])
    # The bot, the Cloudflare simulator and the Slack stand-in take three ports in a row.
    for address, taken, what in (
        (host, port, "port"),
        ("127.0.0.1", port + 1, "the simulator's port"),
        ("127.0.0.1", port + 2, "the Slack stand-in's port"),
    ):
        try:
            listen(address, taken, what).close()
        except StartupError as exc:
            _fail([f"{exc} (releasebot dev uses --port and the two ports after it)"])
    settings, config, secret = prepare(port, data, console, host)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_dev(settings, config, secret, data, console))


@sim_app.command("cloudflare")
def sim_cloudflare(
    port: int = typer.Option(8787, help="port to listen on (127.0.0.1)"),
    seed: bool = typer.Option(True, help="preload the example services and versions"),
) -> None:
    """Serve the Cloudflare API simulator alone (base URL http://127.0.0.1:PORT/client/v4)."""
    from bot.cloudflare.simulator import serve as serve_simulator

    typer.echo(f"Cloudflare simulator: CLOUDFLARE_API_BASE_URL=http://127.0.0.1:{port}/client/v4")
    serve_simulator(port=port, seed=seed)


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the audit chain; exit non-zero naming the first broken record."""
    import asyncio

    from storage.audit import verify_chain
    from storage.db import StorageUnavailable, create_engine

    settings = _settings_or_exit()

    async def check() -> ChainReport:
        engine = create_engine(settings.database_url)
        try:
            return await verify_chain(engine)
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(check())
    except StorageUnavailable as exc:
        _fail([str(exc)])
        return
    except Exception as exc:  # an unreadable table is a broken trail, said in words
        _fail([f"audit trail unreadable: {type(exc).__name__}: {str(exc).splitlines()[0]}"], 1)
        return
    typer.echo(str(report))
    if not report.ok:
        raise typer.Exit(1)


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@audit_app.command("export")
def audit_export(
    fmt: ExportFormat = typer.Option(ExportFormat.jsonl, "--format", help="output format"),
    since: str | None = typer.Option(None, help="only records at or after this time"),
) -> None:
    """Write the audit trail to stdout, streaming."""
    import asyncio
    from datetime import UTC, datetime

    from bot.audit_export import export
    from commands import UsageError
    from commands.when import parse_since

    settings = _settings_or_exit()
    start = None
    if since:
        try:
            start = parse_since(since, datetime.now(UTC))
        except UsageError as exc:
            _fail([f"--since: {exc.message}"])
    asyncio.run(export(settings.database_url, fmt.value, start, sys.stdout))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
