"""The Slack stand-in and the Cloudflare simulator in one process, for the benchmarks (as
``releasebot dev`` runs them, but on ports of their own and without the bot).

    .venv/bin/python bench/fakes.py --sim-port 8801 --slack-port 8802 --api-token T [--services 200]

Besides the simulator's own routes, the simulator's port serves:

* ``GET /__bench/ready``: 200 once both servers listen.
* ``GET /__bench/deployments?after=N&timeout=S``: waits until more than N deployment POSTs
  reached the API; ``{"count", "times"}`` with each POST's ``time.monotonic()`` (one clock for
  every process on the machine).
* ``GET /__bench/ephemerals?after=N&timeout=S``: waits until the stand-in holds more than N
  ephemeral messages; ``{"count", "texts"}`` (the newest ten).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from bot.cloudflare.sim_state import SimulatorState
from bot.cloudflare.simulator import create_simulator
from bot.dev.slack_standin import StandinState, create_standin


class TimedPosts(list):  # type: ignore[type-arg]
    """``SimulatorState.deployment_posts`` that also notes when each POST arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self.changed = asyncio.Event()

    def append(self, item: Any) -> None:
        self.times.append(time.monotonic())
        super().append(item)
        self.changed.set()


def generated_services(state: SimulatorState, count: int) -> None:
    """``svc-000`` ... : a staging and a production script each, with v1.4.0-v1.4.2 uploaded
    and v1.4.1 at 100% (like the example services)."""
    start = state.clock() - timedelta(days=3)
    for n in range(count):
        for script in (f"svc-{n:03d}-staging", f"svc-{n:03d}"):
            state.seed_example_script(script, start)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sim-port", type=int, required=True)
    parser.add_argument("--slack-port", type=int, required=True)
    parser.add_argument("--api-token", required=True)
    parser.add_argument("--services", type=int, default=0, help="generated services (svc-NNN)")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    cf = SimulatorState()
    cf.seed_example()
    if options.services:
        generated_services(cf, options.services)
    posts = TimedPosts()
    cf.deployment_posts = posts
    slack = StandinState()
    slack.seed_example()
    ephemerals_changed = asyncio.Event()
    notify = slack.notify

    async def notify_and_mark() -> None:
        ephemerals_changed.set()
        await notify()

    slack.notify = notify_and_mark  # type: ignore[method-assign]

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def wait_for(request: Request, count: Any, event: asyncio.Event) -> None:
        after = int(request.query_params.get("after", "0"))
        timeout = float(request.query_params.get("timeout", "30"))
        deadline = time.monotonic() + timeout
        while count() <= after and time.monotonic() < deadline:
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), deadline - time.monotonic())
            except TimeoutError:
                break

    async def deployments(request: Request) -> JSONResponse:
        await wait_for(request, lambda: len(posts.times), posts.changed)
        return JSONResponse({"count": len(posts.times), "times": posts.times})

    def ephemeral_texts() -> list[str]:
        return [m.text for m in slack.messages if m.ephemeral_for is not None]

    async def ephemerals(request: Request) -> JSONResponse:
        await wait_for(request, lambda: len(ephemeral_texts()), ephemerals_changed)
        texts = ephemeral_texts()
        return JSONResponse({"count": len(texts), "texts": texts[-10:]})

    sim_app = Starlette(
        routes=[
            Route("/__bench/ready", ready),
            Route("/__bench/deployments", deployments),
            Route("/__bench/ephemerals", ephemerals),
            Mount("/", create_simulator(cf, api_token=options.api_token)),
        ]
    )
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
            )
        )
        for app, port in ((create_standin(slack), options.slack_port), (sim_app, options.sim_port))
    ]
    await asyncio.gather(*(s.serve() for s in servers))


if __name__ == "__main__":
    asyncio.run(main())
