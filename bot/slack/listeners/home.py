"""Events: the App Home tab (published when someone opens it) and @-mentions of the bot."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack.blocks.home import home_view
from bot.slack.listeners.context import Listening
from bot.slack.text import code, mention


def register(app: AsyncApp, rt: Listening) -> None:
    async def on_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        rt.tasks.spawn(publish(rt, event["user"]), name=f"home:{event['user']}")

    async def on_mention(event: dict[str, Any]) -> None:
        command = rt.config.slack.command
        text = (
            f"Hi {mention(str(event.get('user', '')))}: I answer {code(command)} commands; "
            f"try {code(f'{command} help')} or {code(f'{command} status')}."
        )
        rt.tasks.spawn(
            rt.slack_client.chat_postMessage(
                channel=event["channel"], thread_ts=event.get("ts"), text=text
            ),
            name="mention",
        )

    app.event("app_home_opened")(on_home_opened)
    app.event("app_mention")(on_mention)


async def publish(rt: Listening, user_id: str) -> None:
    service = rt.service
    view = home_view(
        await service.overview(), await service.in_flight(), await service.waiting_for(user_id)
    )
    await rt.slack_client.views_publish(user_id=user_id, view=view)
