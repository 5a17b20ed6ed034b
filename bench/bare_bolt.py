"""The baseline for ``bench/ack_latency.py``: a bare Bolt app in its fastest form.

One ``AsyncApp`` with ``process_before_response=True`` and request verification on (the same
signing secret as the bot), one slash-command listener that acks at once and does nothing
else, served by uvicorn (one worker, no access log) through Bolt's plain ASGI adapter (no web
framework in between; ``--adapter starlette`` uses Bolt's Starlette adapter, as the bot does).
Its Slack client points at the Slack stand-in, which answers the one ``auth.test`` Bolt makes.

    .venv/bin/python bench/bare_bolt.py --port 8803 --slack-api http://127.0.0.1:8802/api/
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

import uvicorn
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def create(signing_secret: str, token: str, slack_api: str, adapter: str = "asgi") -> Any:
    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=slack_api),
        signing_secret=signing_secret,
        process_before_response=True,
        request_verification_enabled=True,
    )

    @app.command("/release")
    async def on_release(ack: Any) -> None:
        await ack()

    if adapter == "starlette":
        from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.routing import Route

        handler = AsyncSlackRequestHandler(app)

        async def events(request: Request) -> Any:
            return await handler.handle(request)

        async def healthz(_: Request) -> Any:
            from starlette.responses import JSONResponse

            return JSONResponse({"status": "ok"})

        return Starlette(
            routes=[
                Route("/slack/events", events, methods=["POST"]),
                Route("/healthz", healthz),
            ]
        )
    from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler as AsgiHandler

    return AsgiHandler(app, path="/slack/events")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slack-api", required=True)
    parser.add_argument("--adapter", choices=["asgi", "starlette"], default="asgi")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    app = create(
        os.environ["SLACK_SIGNING_SECRET"],
        os.environ["SLACK_BOT_TOKEN"],
        options.slack_api,
        options.adapter,
    )
    uvicorn.run(
        app, host="127.0.0.1", port=options.port, log_level="warning", access_log=False, workers=1
    )


if __name__ == "__main__":
    main()
