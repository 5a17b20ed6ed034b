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

from bot.cloudflare.sim_state import EXAMPLE_DATABASE_ID
from bot.cloudflare.simulator import SimulatorState, create_simulator
from bot.config import parse_config
from bot.dev.console import Console
from bot.dev.slack_standin import StandinState, create_standin
from bot.dev.web_console import WebConsole
from bot.logs import configure
from bot.runtime import Runtime
from bot.settings import Settings
from bot.urls import is_loopback
from bot.web import create_web_app
from storage.db import upgrade

log = logging.getLogger("releasebot.dev")

DEV_TOKENS = {"slack": "xoxb-dev-offline", "cloudflare": "dev-offline-cloudflare"}
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


def dev_config(sim_url: str, bake: str = DEV_BAKE, freezes: bool = True) -> dict[str, Any]:
    """The example config, pointed at the simulator's Workers and D1 database, with a short
    ``bake``; ``freezes=False`` drops the example's freeze windows (tests that must not
    depend on the day of the week)."""
    data: dict[str, Any] = yaml.safe_load(example_config_path().read_text())
    if not freezes:
        data.pop("freezes", None)
    for service in data["services"].values():
        for env in service["environments"].values():
            env["health_url"] = f"{sim_url}/__workers/{env['script']}/healthz"
            if env.get("d1_database_id"):
                env["d1_database_id"] = EXAMPLE_DATABASE_ID
    for policy in data["policies"].values():
        if policy.get("rollout"):
            policy["rollout"]["bake"] = bake
    return data


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
    settings = Settings(
        releasebot_audit_key_file=str(dev_audit_key(data_dir)),
        slack_bot_token=SecretStr(DEV_TOKENS["slack"]),
        slack_signing_secret=SecretStr(signing_secret),
        slack_api_url=f"http://127.0.0.1:{port + 2}/api/",
        cloudflare_api_token=SecretStr(DEV_TOKENS["cloudflare"]),
        cloudflare_api_base_url=f"{sim_url}/client/v4",
        database_url=f"sqlite:///{(data_dir / 'releasebot.db').resolve()}",
        host=host,
        port=port,
        log_format="console",
        log_level="WARNING" if console else "INFO",
    )
    config_data = dev_config(sim_url)
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
    sim_port, slack_port = port + 1, port + 2
    sim_url = f"http://127.0.0.1:{sim_port}"
    cf_state = SimulatorState()
    cf_state.seed_example(config.cloudflare.account_id)
    slack_state = StandinState()
    slack_state.seed_example()
    servers = [
        _server(create_simulator(cf_state, api_token=DEV_TOKENS["cloudflare"]), sim_port),
        _server(create_standin(slack_state), slack_port),
    ]
    serving = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers):
        if any(t.done() for t in serving):
            raise SystemExit(f"could not start the simulators on ports {sim_port}/{slack_port}")
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
        f" · Slack stand-in http://127.0.0.1:{slack_port}/api · data {data_dir}/"
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
        for server in [bot_server, *servers]:
            server.should_exit = True
        await asyncio.gather(bot_task, *serving, return_exceptions=True)
