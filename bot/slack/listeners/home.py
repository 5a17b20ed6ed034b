"""App Home: published when someone opens the bot's Home tab."""

from __future__ import annotations

from typing import Any

from bot.slack.blocks.home import home_view


def register(app: Any, rt: Any) -> None:
    async def on_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        rt.tasks.spawn(publish(rt, event["user"]), name=f"home:{event['user']}")

    app.event("app_home_opened")(on_home_opened)


async def publish(rt: Any, user_id: str) -> None:
    service = rt.service
    view = home_view(
        await service.overview(), await service.in_flight(), await service.waiting_for(user_id)
    )
    await rt.slack_client.views_publish(user_id=user_id, view=view)
