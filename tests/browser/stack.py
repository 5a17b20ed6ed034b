"""The whole ``releasebot dev`` stack in-process, on free ports, for the browser tests: the
Cloudflare simulator, the Slack stand-in, and the bot with the browser console beside it — all
on one event loop in a background thread (the stand-in's change notification is per loop)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr

from bot.cloudflare.simulator import SimulatorState, create_simulator
from bot.config import parse_config
from bot.dev.devserver import DEV_TOKENS, dev_app, dev_config, link_builds
from bot.dev.slack_standin import StandinState, create_standin
from bot.dev.web_console import WebConsole
from bot.github.seed import seed_example as seed_github
from bot.github.standin import create_standin as create_github
from bot.github.standin_state import GitHubState
from bot.runtime import Runtime
from bot.settings import Settings
from bot.web import create_web_app
from storage.db import upgrade
from tests.fixtures.servers import free_port

SIGNING_SECRET = "console-5ign1ng-secret-8e1d"


def _server(app: Any, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    return uvicorn.Server(config)


class DevStack:
    """``with DevStack(tmp_path) as stack: stack.console_url``."""

    def __init__(
        self,
        data_dir: Path,
        bake: str = "1s",
        stream_seconds: float = 30.0,
        checks: bool = False,
    ) -> None:
        """``stream_seconds``: how long the console's event streams last before the page
        opens the next one; ``checks``: the policies' pre-deploy checks, read from a GitHub
        stand-in seeded as ``releasebot dev`` seeds it (the security scan settles by
        itself)."""
        self.port, sim_port, slack_port = free_port(), free_port(), free_port()
        self.github_port = free_port() if checks else None
        self.url = f"http://127.0.0.1:{self.port}"
        self.console_url = f"{self.url}/console"
        self.sim_url = f"http://127.0.0.1:{sim_port}"
        data = dev_config(self.sim_url, bake=bake, freezes=False, checks=checks)
        for policy in data["policies"].values():
            if policy.get("checks"):
                os.environ.setdefault(policy["checks"]["github"]["token_env"], DEV_TOKENS["github"])
        self.config = parse_config(data, str(data_dir / "releasebot.yml"))
        self.settings = Settings(
            slack_bot_token=SecretStr(DEV_TOKENS["slack"]),
            slack_signing_secret=SecretStr(SIGNING_SECRET),
            slack_api_url=f"http://127.0.0.1:{slack_port}/api/",
            cloudflare_api_token=SecretStr(DEV_TOKENS["cloudflare"]),
            cloudflare_api_base_url=f"{self.sim_url}/client/v4",
            database_url=f"sqlite:///{(data_dir / 'releasebot.db').resolve()}",
            port=self.port,
            **(
                {"github_api_url": f"http://127.0.0.1:{self.github_port}"}
                if self.github_port
                else {}
            ),
        )
        self.cf = SimulatorState()
        self.cf.seed_example(self.config.cloudflare.account_id)
        self.github = GitHubState()
        if checks:
            link_builds(self.cf, seed_github(self.github, demo=True))
        self.slack = StandinState()
        self.slack.seed_example()
        self.rt: Runtime | None = None
        self.console: WebConsole | None = None
        self.ports = (self.port, sim_port, slack_port)
        self.stream_seconds = stream_seconds
        self.servers: list[uvicorn.Server] = []
        self.serving: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="dev-stack")

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        port, sim_port, slack_port = self.ports
        self.rt = Runtime(self.settings, self.config)
        self.console = WebConsole(
            self.slack,
            self.config,
            bot_url=self.url,
            sim_url=self.sim_url,
            signing_secret=SIGNING_SECRET,
            stream_seconds=self.stream_seconds,
        )
        self.servers = [
            _server(create_simulator(self.cf, api_token=DEV_TOKENS["cloudflare"]), sim_port),
            _server(create_standin(self.slack), slack_port),
            _server(dev_app(create_web_app(self.rt), self.console), port),
        ]
        if self.github_port is not None:
            github = create_github(self.github, token=DEV_TOKENS["github"], validate_contract=True)
            self.servers.insert(0, _server(github, self.github_port))
        self.serving = [asyncio.create_task(s.serve()) for s in self.servers]
        await asyncio.gather(*self.serving)

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the stack's loop."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> DevStack:
        upgrade(self.settings.database_url)
        self.thread.start()
        deadline = time.monotonic() + 20
        wanted = 3 + (self.github_port is not None)
        while len(self.servers) < wanted or not all(s.started for s in self.servers):
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dev stack did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.console is not None and self.loop is not None:
            self.call(self.console.aclose())
        # the bot first: its shutdown still posts to the Slack stand-in
        self.servers[-1].should_exit = True
        self.call(asyncio.wait([self.serving[-1]], timeout=20))
        for server in self.servers:
            server.should_exit = True
        self.thread.join(timeout=20)
