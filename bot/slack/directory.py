"""User-group membership from Slack (``usergroups.users.list``), cached for a short time."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("releasebot.slack")


class SlackDirectory:
    def __init__(self, client: AsyncWebClient, ttl: float = 60.0) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: dict[str, tuple[float, set[str]]] = {}

    async def members(self, group_ids: Sequence[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        now = time.monotonic()
        for group in group_ids:
            cached = self._cache.get(group)
            if cached is not None and now - cached[0] < self.ttl:
                found[group] = cached[1]
                continue
            try:
                resp = await self.client.usergroups_users_list(usergroup=group)
                users = set(resp.get("users") or [])
            except SlackApiError as exc:
                # No group means nobody from it may approve: the safe reading of an outage.
                log.warning("could not list user group %s: %s", group, exc.response.get("error"))
                users = cached[1] if cached is not None else set()
            self._cache[group] = (now, users)
            found[group] = users
        return found
