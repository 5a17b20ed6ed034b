"""``releasebot dev``: the bot, the Cloudflare simulator and the Slack stand-in in one process,
on SQLite under a local folder, with the terminal console in front. No credentials needed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route

from bot.cloudflare.sim_state import EXAMPLE_DATABASE_ID, EXAMPLE_STAGING_DATABASE_ID
from bot.cloudflare.simulator import SimulatorState, create_simulator
from bot.config import parse_config
from bot.dev.console import Console
from bot.dev.slack_standin import StandinState, create_standin
from bot.dev.web_console import WebConsole
from bot.github.seed import seed_example as seed_github
from bot.github.standin import create_standin as create_github
from bot.github.standin_state import GitHubState
from bot.logs import configure
from bot.runtime import Runtime
from bot.settings import Settings
from bot.urls import is_loopback
from bot.web import create_web_app
from storage.db import upgrade

log = logging.getLogger("releasebot.dev")

DEV_TOKENS = {
    "slack": "xoxb-dev-offline",
    "cloudflare": "dev-offline-cloudflare",
    "github": "dev-offline-github",
}
DEV_POLL = "3s"  # pre-deploy checks are read again this often offline
DEV_BAKE = "15s"


def example_config_path() -> Path:
    """The example config: the source tree's, else the installed copy
    (``<prefix>/share/releasebot``, see pyproject.toml), else one in the current folder."""
    name = "releasebot.example.yml"
    for candidate in (
        Path(__file__).resolve().parents[2] / name,
        Path(sys.prefix) / "share" / "releasebot" / name,
    ):
        if candidate.exists():
            return candidate
    return Path.cwd() / name


def dev_config(
    sim_url: str,
    bake: str = DEV_BAKE,
    freezes: bool = True,
    checks: bool = True,
    repo: Path | None = None,
) -> dict[str, Any]:
    """The example config, pointed at the simulator's Workers and D1 databases, with a short
    ``bake``; ``freezes=False`` drops the example's freeze windows (tests that must not
    depend on the day of the week), ``checks=False`` the policies' pre-deploy checks (a
    stack without the GitHub stand-in). ``repo``: the folder holding the demo's migrations
    (without it, the example's migrations are left out)."""
    data: dict[str, Any] = yaml.safe_load(example_config_path().read_text())
    if not freezes:
        data.pop("freezes", None)
    for policy in data["policies"].values():
        if not checks:
            policy.pop("checks", None)
        elif policy.get("checks"):
            policy["checks"]["poll"] = DEV_POLL
    for service in data["services"].values():
        for name, env in service["environments"].items():
            env["health_url"] = f"{sim_url}/__workers/{env['script']}/healthz"
            if env.get("d1_database_id"):
                staging = name == "staging"
                env["d1_database_id"] = (
                    EXAMPLE_STAGING_DATABASE_ID if staging else EXAMPLE_DATABASE_ID
                )
            if env.get("migrations"):
                if repo is None:
                    del env["migrations"]
                else:
                    env["migrations"]["path"] = str(repo)
    for policy in data["policies"].values():
        if policy.get("rollout"):
            policy["rollout"]["bake"] = bake
    return data


def link_builds(cf_state: SimulatorState, heads: dict[str, dict[str, str]]) -> None:
    """Say that Workers Builds made each example version from its release's commit in the
    GitHub stand-in (``heads``: repository → tag → sha): tax-api and tax-api-staging from
    battleborn/tax-api, and so on."""
    for repository, tags in heads.items():
        service = repository.split("/", 1)[1]
        for script in (service, f"{service}-staging"):
            if script not in cf_state.scripts:
                continue
            for number, (tag, sha) in enumerate(tags.items(), start=1):
                cf_state.record_build(
                    cf_state.version_id(script, tag),
                    repository,
                    sha,
                    commit_message=tag,
                    pull_request_url=f"https://github.com/{repository}/pull/{number}",
                )


# The demo's migrations: what `releasebot dev` shows a release applying to D1 (staging first).
DEMO_MIGRATIONS = {
    "0001_create_returns.sql": (
        "-- Tax returns, one per user and year.\n"
        "CREATE TABLE returns (\n"
        "  id INTEGER PRIMARY KEY,\n"
        "  user_email TEXT NOT NULL,\n"
        "  year INTEGER NOT NULL,\n"
        "  filed_at TEXT\n"
        ");\n"
        "CREATE UNIQUE INDEX idx_returns_user_year ON returns (user_email, year);\n"
    ),
    "0002_add_receipts.sql": (
        "-- Receipts attached to a return; the search of v1.4.2 reads them.\n"
        "CREATE TABLE receipts (\n"
        "  id INTEGER PRIMARY KEY,\n"
        "  return_id INTEGER NOT NULL REFERENCES returns(id),\n"
        "  total_cents INTEGER NOT NULL DEFAULT 0\n"
        ");\n"
        "ALTER TABLE returns ADD COLUMN status TEXT NOT NULL DEFAULT 'draft';\n"
    ),
}


def demo_repo(repo: Path) -> Path:
    """A folder standing for the repository, with the demo's migrations (files a person
    added or changed there are left as they are)."""
    folder = repo / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in DEMO_MIGRATIONS.items():
        path = folder / name
        if not path.exists():
            path.write_text(sql)
    return repo


def dev_app(bot_app: Starlette, console: WebConsole) -> Starlette:
    """The bot's own app with the browser console beside it at ``/console``. The bot's
    lifespan (start the runtime, close it) runs as the outer app's."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with bot_app.router.lifespan_context(bot_app):
            yield

    async def to_console(_: Request) -> RedirectResponse:
        return RedirectResponse("/console/")

    return Starlette(
        routes=[
            Route("/console", to_console),
            Mount("/console", console.app),
            Mount("/", bot_app),
        ],
        lifespan=lifespan,
    )


def _server(app: Any, port: int, host: str = "127.0.0.1") -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    )


def _local_url(host: str, port: int) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("0.0.0.0", "::") or is_loopback(host):
        return f"http://127.0.0.1:{port}"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def prepare(
    port: int, data_dir: Path, console: bool, host: str = "127.0.0.1"
) -> tuple[Settings, Any, str]:
    """Settings, config and signing secret for an offline run; migrates the SQLite file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    sim_url = f"http://127.0.0.1:{port + 1}"
    signing_secret = secrets.token_hex(16)
    config_data = dev_config(sim_url, repo=demo_repo(data_dir / "repo"))
    # the GitHub stand-in takes the dev token; the policies name where it is read from
    for policy in config_data["policies"].values():
        if policy.get("checks"):
            os.environ.setdefault(policy["checks"]["github"]["token_env"], DEV_TOKENS["github"])
    settings = Settings(
        releasebot_audit_key_file=str(dev_audit_key(data_dir)),
        slack_bot_token=SecretStr(DEV_TOKENS["slack"]),
        slack_signing_secret=SecretStr(signing_secret),
        slack_api_url=f"http://127.0.0.1:{port + 2}/api/",
        cloudflare_api_token=SecretStr(DEV_TOKENS["cloudflare"]),
        cloudflare_api_base_url=f"{sim_url}/client/v4",
        github_api_url=f"http://127.0.0.1:{port + 3}",
        database_url=f"sqlite:///{(data_dir / 'releasebot.db').resolve()}",
        host=host,
        port=port,
        log_format="console",
        log_level="WARNING" if console else "INFO",
    )
    (data_dir / "releasebot.yml").write_text(yaml.safe_dump(config_data, sort_keys=False))
    config = parse_config(config_data, str(data_dir / "releasebot.yml"))
    configure(settings.log_level, settings.log_format, settings.secrets())
    upgrade(settings.database_url)
    return settings, config, signing_secret


def dev_audit_key(data_dir: Path) -> Path:
    """The data folder's audit key file, made up the first time (kept outside the database,
    readable by its owner only), so the folder's chain stays verifiable across runs."""
    path = data_dir / "audit.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    return path.resolve()


async def run_dev(
    settings: Settings, config: Any, signing_secret: str, data_dir: Path, console: bool = True
) -> None:
    port = settings.port
    sim_port, slack_port, github_port = port + 1, port + 2, port + 3
    sim_url = f"http://127.0.0.1:{sim_port}"
    cf_state = SimulatorState()
    cf_state.seed_example(config.cloudflare.account_id)
    slack_state = StandinState()
    slack_state.seed_example()
    github_state = GitHubState()
    link_builds(cf_state, seed_github(github_state, demo=True))
    servers = [
        _server(create_simulator(cf_state, api_token=DEV_TOKENS["cloudflare"]), sim_port),
        _server(create_standin(slack_state), slack_port),
        _server(
            create_github(github_state, token=DEV_TOKENS["github"], validate_contract=True),
            github_port,
        ),
    ]
    serving = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers):
        if any(t.done() for t in serving):
            raise SystemExit(
                f"could not start the simulators on ports {sim_port}/{slack_port}/{github_port}"
            )
        await asyncio.sleep(0.02)
    rt = Runtime(settings, config)
    bot_url = _local_url(settings.host, port)
    web_console = WebConsole(
        slack_state,
        config,
        bot_url=bot_url,
        sim_url=sim_url,
        signing_secret=signing_secret,
    )
    bot_server = _server(dev_app(create_web_app(rt), web_console), port, settings.host)
    web_console.stop_when = lambda: bot_server.should_exit
    bot_task = asyncio.create_task(bot_server.serve())
    while not bot_server.started:
        if bot_task.done():
            raise SystemExit(f"could not start the bot on port {port}")
        await asyncio.sleep(0.02)
    print(
        f"releasebot dev: bot {bot_url} · Cloudflare simulator {sim_url}/client/v4"
        f" · Slack stand-in http://127.0.0.1:{slack_port}/api"
        f" · GitHub stand-in http://127.0.0.1:{github_port} · data {data_dir}/"
    )
    print(f"releasebot dev: browser console {bot_url}/console")
    try:
        if console and sys.stdin.isatty():
            await Console(
                bot_url,
                slack_state,
                signing_secret,
                config.slack.release_channel,
                config.slack.command,
            ).run()
        else:
            await bot_task
    finally:
        await web_console.aclose()  # ends the page's event streams so the servers can stop
        # The bot first: its shutdown still talks to Slack (the audit checkpoint) and to
        # Cloudflare, so the stand-ins stop only once it is done.
        bot_server.should_exit = True
        await asyncio.gather(bot_task, return_exceptions=True)
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*serving, return_exceptions=True)
