"""The ``releasebot`` command line (typer). Each command builds what it needs and exits with a
clear line per problem, never a traceback, for anything an operator can get wrong."""

from __future__ import annotations

import contextlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from bot import __version__
from bot.settings import ENVIRONMENT, secret_from_env

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
        for name, policy in config.policies.items():
            if policy.checks is None:
                continue
            token = secret_from_env(policy.checks.github.token_env)
            if token is None:
                problems.append(
                    f"{policy.checks.github.token_env} is not set (the GitHub token "
                    f"policies.{name}.checks.github.token_env names)"
                )
            else:
                webhook_secrets.append(token.get_secret_value())
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


# `releasebot audit verify` exit codes (the README lists them too).
VERIFY_OK = 0
VERIFY_BROKEN = 1
VERIFY_UNAUTHENTICATED = 3


@audit_app.command("verify")
def audit_verify(
    key_files: list[Path] = typer.Option(
        [],
        "--key-file",
        help="a file holding an audit key; repeat for the keys of before a rotation "
        "(also read: RELEASEBOT_AUDIT_KEY, RELEASEBOT_AUDIT_KEY_FILE, RELEASEBOT_AUDIT_KEYS)",
    ),
    checkpoints: Path | None = typer.Option(
        None,
        "--checkpoints",
        help="a JSONL export of the audit channel's checkpoint messages, one per line",
    ),
    from_slack: bool = typer.Option(
        False,
        "--from-slack",
        help="read the checkpoints from the audit channel (conversations.history; needs "
        "SLACK_BOT_TOKEN with channels:history and RELEASEBOT_CONFIG)",
    ),
) -> None:
    """Walk the audit chain; exit non-zero naming the first broken record.

    Exit codes: 0 the chain is intact and authentic; 1 it is broken (or unreadable); 2 a
    setting or key is wrong; 3 the links are intact but authenticity was not checked (a key
    the records name was not given, or no record is keyed).
    """
    import asyncio

    from storage.audit import verify_chain
    from storage.audit_keys import AuditKey, AuditKeyError, read_key_file
    from storage.db import StorageUnavailable, create_engine

    settings = _settings_or_exit()
    try:
        keys = settings.audit_keys()
        for path in key_files:
            try:
                keys.append(AuditKey(read_key_file(str(path))))
            except AuditKeyError as exc:
                raise AuditKeyError(f"--key-file {path}: {exc}") from None
    except AuditKeyError as exc:
        _fail([str(exc)])

    async def check() -> ChainReport:
        engine = create_engine(settings.database_url)
        try:
            return await verify_chain(engine, keys=keys)
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(check())
    except StorageUnavailable as exc:
        _fail([str(exc)])
        return
    except Exception as exc:  # an unreadable table is a broken trail, said in words
        _fail(
            [f"audit trail unreadable: {type(exc).__name__}: {str(exc).splitlines()[0]}"],
            VERIFY_BROKEN,
        )
        return
    typer.echo(str(report))
    if not report.ok:
        raise typer.Exit(VERIFY_BROKEN)
    if checkpoints is not None or from_slack:
        found = _read_checkpoints(checkpoints) if checkpoints is not None else []
        foreign = 0
        if from_slack:
            from_channel, foreign = _slack_checkpoints(settings)
            found += from_channel
        cp_report = asyncio.run(_check_checkpoints(settings.database_url, found, keys, foreign))
        typer.echo(str(cp_report))
        if not cp_report.ok:
            raise typer.Exit(VERIFY_BROKEN)
        if cp_report.unchecked or not cp_report.checked:
            raise typer.Exit(VERIFY_UNAUTHENTICATED)
    if not report.authenticated:
        raise typer.Exit(VERIFY_UNAUTHENTICATED)


async def _check_checkpoints(
    url: str, found: list[dict[str, Any]], keys: list[Any], foreign: int
) -> Any:
    from storage.checkpoints import verify_checkpoints
    from storage.db import create_engine

    engine = create_engine(url)
    try:
        return await verify_checkpoints(engine, found, keys, foreign)
    finally:
        await engine.dispose()


def _read_checkpoints(path: Path) -> list[dict[str, Any]]:
    """The checkpoints a JSONL file holds (blank lines skipped; any other line is an error)."""
    from storage.checkpoints import parse_checkpoint

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        _fail([f"--checkpoints {path}: cannot read it ({exc})"])
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cp = parse_checkpoint(line)
        if cp is None:
            _fail([f"--checkpoints {path}:{number}: not an audit checkpoint"])
        found.append(cp)
    return found


def _slack_checkpoints(settings: Settings) -> tuple[list[dict[str, Any]], int]:
    """The checkpoints the bot posted to the audit channel, read page by page
    (conversations.history), and how many look-alike messages others posted (skipped: anyone
    in the channel can post text shaped like a checkpoint)."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    from storage.checkpoints import parse_checkpoint

    config = _config_or_exit(settings.releasebot_config)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if not token:
        _fail(["SLACK_BOT_TOKEN is not set (needed by --from-slack)"])
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=10)
    found: list[dict[str, Any]] = []
    foreign = 0
    cursor: str | None = None
    try:
        me: Any = client.auth_test()
        bot_id, bot_user = me.get("bot_id"), me.get("user_id")
        while True:
            page: Any = client.conversations_history(
                channel=config.slack.audit_channel, limit=200, cursor=cursor
            )
            for message in page.get("messages", []):
                cp = parse_checkpoint(message.get("text") or "")
                if cp is None:
                    continue
                by_bot = (bot_id and message.get("bot_id") == bot_id) or (
                    bot_user and message.get("user") == bot_user
                )
                if by_bot:
                    found.append(cp)
                else:
                    foreign += 1
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or not cursor:
                return found, foreign
    except SlackApiError as exc:
        _fail([f"--from-slack: Slack refused conversations.history ({exc.response.get('error')})"])
    except OSError as exc:
        _fail([f"--from-slack: cannot reach Slack ({exc})"])


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
