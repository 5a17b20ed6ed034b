"""The browser console of ``releasebot dev``: a Slack-like channel at ``/console``.

The page talks only to this app. This app reads the same Slack Web API stand-in the bot
writes to (``StandinState``), and turns what a person does on the page into the requests
Slack would send the bot — signed slash commands, ``block_actions`` and ``view_submission``
payloads posted to ``POST /slack/events`` — so the bot runs its production code paths. The
signing secret stays in this process. The Cloudflare panel reads and steers the simulator
through its ``/__sim`` endpoints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from itertools import count
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import httpx

from bot.config import Config
from bot.dev import slack_payloads
from bot.dev.slack_standin import BOT_USER_ID, Message, StandinState
from bot.dev.web_blocks import find_button, input_types
from bot.dev.web_cloudflare import SimulatorView
from bot.dev.web_http import STREAM_SECONDS, console_app
from bot.dev.web_view import (
    ChannelView,
    Person,
    channel_label,
    channels_nav,
    ts_key,
)


def with_trigger(body: str, trigger_id: str, is_ephemeral: bool = False) -> str:
    """A form-encoded Slack request with its ``trigger_id`` replaced (for ``payload=`` bodies,
    inside the JSON payload), so a modal the bot opens can be traced to who pressed what."""
    if body.startswith("payload="):
        payload = json.loads(unquote(body.removeprefix("payload=")))
        payload["trigger_id"] = trigger_id
        if is_ephemeral and "container" in payload:
            payload["container"]["is_ephemeral"] = True
            payload.pop("message", None)
        return "payload=" + quote(json.dumps(payload))
    fields = dict(parse_qsl(body, keep_blank_values=True))
    fields["trigger_id"] = trigger_id
    return urlencode(fields)


class WebConsole:
    """State and endpoints of the browser console; ``app`` is the ASGI app to mount."""

    def __init__(
        self,
        standin: StandinState,
        config: Config,
        *,
        bot_url: str,
        sim_url: str,
        signing_secret: str,
        transport: httpx.AsyncBaseTransport | None = None,
        sim_transport: httpx.AsyncBaseTransport | None = None,
        stream_seconds: float = STREAM_SECONDS,
    ) -> None:
        """``transport``/``sim_transport`` replace the network to the bot/the simulator
        (tests pass ``httpx.ASGITransport``); ``stream_seconds`` is how long one event
        stream lasts before the page is told to open the next."""
        self.slack = standin
        self.config = config
        self.command = config.slack.command
        self.home = config.slack.release_channel
        self._secret = signing_secret
        self.http = httpx.AsyncClient(base_url=bot_url, timeout=15, transport=transport)
        targets = {
            env.script: (service, name)
            for service, spec in config.services.items()
            for name, env in spec.environments.items()
        }
        self.sim = SimulatorView(sim_url, targets, sim_transport)
        self.local: list[Message] = []  # answers that rode on an ack, never sent via the API
        self.triggers: dict[str, str] = {}  # trigger_id → who pressed
        self.closed_views: set[str] = set()
        self.replaced_views: dict[str, dict[str, Any]] = {}
        self.revision = 0
        self.closing = False
        # set by whoever serves the app: true once the server is shutting down, so the open
        # event streams end and the server does not wait for them
        self.stop_when: Callable[[], bool] = lambda: False
        self._triggers = count(1)
        self.stream_seconds = stream_seconds
        self.app = console_app(self)

    # -- people and channels -------------------------------------------------------------

    def approvers(self) -> set[str]:
        ids: set[str] = set()
        for policy in self.config.policies.values():
            for who in policy.approvers:
                ids.update(self.slack.usergroups.get(who, []) if who.startswith("S") else [who])
        return ids

    def people(self) -> list[Person]:
        approvers = self.approvers()
        return [
            Person(
                uid,
                str(u.get("name", uid)),
                "an approver" if uid in approvers else "a member",
                str(u.get("tz", "UTC")),
            )
            for uid, u in self.slack.users.items()
            if not u.get("is_bot")
        ]

    def person(self, user_id: str | None) -> Person | None:
        return next((p for p in self.people() if p.id == user_id), None)

    def channels(self, user: str) -> list[tuple[str, str, str]]:
        ids = [self.home, self.config.slack.audit_channel]
        if any(m.channel == user for m in self.slack.messages):
            ids.append(user)
        return [(cid, *channel_label(cid, self.slack.users)) for cid in ids]

    # -- what a viewer sees ---------------------------------------------------------------

    def visible(self, user: str, channel: str, since: str | None = None) -> list[Message]:
        """What ``user`` sees in ``channel``: its messages and their own ephemeral answers
        (with ``since``, only those newer than it: Slack keeps an ephemeral message only in the
        client that showed it, so a reload drops them); a direct-message channel (a user id)
        only by the user it belongs to."""
        if channel in self.slack.users and channel != user:
            return []
        after = ts_key(since) if since else None
        return [
            m
            for m in [*self.slack.messages, *self.local]
            if m.channel == channel
            and m.ephemeral_for in (None, user)
            and (m.ephemeral_for is None or after is None or ts_key(m.ts) > after)
        ]

    def session_start(self) -> str:
        """A mark for a page that opens now: ephemeral messages after it are its own."""
        return self.slack.next_ts()

    def open_view(self, user: str) -> dict[str, Any] | None:
        """The newest modal the bot opened for ``user``'s last action and nobody closed."""
        for view in reversed(self.slack.views):
            vid = str(view.get("id", ""))
            if self.triggers.get(str(view.get("trigger_id"))) == user:
                return None if vid in self.closed_views else self.replaced_views.get(vid, view)
        return None

    def snapshot(self, viewer: Person, channel: str, since: str | None = None) -> dict[str, Any]:
        render = ChannelView(self.slack.users, viewer)
        view = self.open_view(viewer.id)
        channels = self.channels(viewer.id)
        label, kind = channel_label(channel, self.slack.users)
        visible = self.visible(viewer.id, channel, since)
        return {
            "user": viewer.id,
            "channel": channel,
            "title": ("#" if kind == "channel" else "@") + label,
            "channels": channels,
            "channels_html": channels_nav(channels, channel),
            "messages": render.messages(visible),
            "threads": render.threads(visible),
            "modal": render.modal(view) if view else None,
        }

    def fingerprint(self) -> tuple[int, ...]:
        """Changes whenever anything a snapshot shows may have changed."""
        edits = sum(m.edits for m in self.slack.messages)
        views = len(self.slack.views)
        return (len(self.slack.messages), edits, len(self.local), views, self.revision)

    async def changed(self) -> None:
        self.revision += 1
        await self.slack.notify()

    async def aclose(self) -> None:
        """Ends every open event stream and closes the HTTP clients."""
        self.closing = True
        await self.slack.notify()
        await self.http.aclose()
        await self.sim.aclose()

    # -- talking to the bot as Slack does ---------------------------------------------------

    def _trigger(self, user: str) -> str:
        trigger = f"{int(time.time())}.{next(self._triggers)}.console"
        self.triggers[trigger] = user
        return trigger

    async def _send(self, body: str) -> httpx.Response:
        headers = slack_payloads.signed_headers(self._secret, body)
        return await self.http.post("/slack/events", content=body.encode(), headers=headers)

    async def _answer_locally(
        self, user: str, channel: str, text: str, blocks: Any = None, public: bool = False
    ) -> None:
        msg = Message(
            channel,
            self.slack.next_ts(),
            BOT_USER_ID,
            text,
            blocks if isinstance(blocks, list) else [],
            ephemeral_for=None if public else user,
        )
        self.local.append(msg)
        await self.changed()

    async def run_command(self, user: Person, channel: str, line: str) -> dict[str, Any]:
        """A slash command typed by ``user`` in ``channel``; the ack's body (usage errors,
        help) is shown to them as an ephemeral message, as Slack does."""
        name, _, text = line.strip().partition(" ")
        if name != self.command:
            await self._answer_locally(
                user.id,
                channel,
                f"`{name}` is not a valid command here. Try `{self.command} help`.",
            )
            return {"ok": False, "status": None}
        body = slack_payloads.slash_command(text.strip(), user.id, channel, self.command, user.name)
        response = await self._send(with_trigger(body, self._trigger(user.id)))
        if response.status_code != 200:
            error = f"http_{response.status_code}"
            await self._answer_locally(
                user.id, channel, f"`{self.command}` failed with the error “{error}”."
            )
        elif response.content.strip():
            try:
                ack = response.json()
            except ValueError:
                ack = {"text": response.text}
            if not isinstance(ack, dict):
                ack = {"text": str(ack)}
            public = ack.get("response_type") == "in_channel"
            await self._answer_locally(
                user.id, channel, str(ack.get("text", "")), ack.get("blocks"), public
            )
        return {"ok": response.status_code == 200, "status": response.status_code}

    def find_message(self, user: str, key: str) -> Message | None:
        channel, _, ts = key.partition(":")
        for m in [*self.slack.messages, *self.local]:
            if m.channel == channel and m.ts == ts and m.ephemeral_for in (None, user):
                return m
        return None

    async def press(self, user: Person, key: str, block_id: str, action_id: str) -> dict[str, Any]:
        """A button press, looked up on the message as the bot sent it, signed and posted."""
        msg = self.find_message(user.id, key)
        button = find_button(msg.blocks, block_id, action_id) if msg else None
        if msg is None or button is None:
            return {"ok": False, "status": None, "error": "That button is no longer there."}
        label = str(button.get("text", {}).get("text", ""))
        body = slack_payloads.block_action(
            action_id, str(button.get("value", "")), user.id, msg.channel, msg.ts, block_id, label
        )
        trigger = self._trigger(user.id)
        response = await self._send(with_trigger(body, trigger, msg.ephemeral_for is not None))
        ok = response.status_code == 200
        error = None if ok else f"The bot answered HTTP {response.status_code} to “{label}”."
        return {"ok": ok, "status": response.status_code, "error": error}

    async def submit_view(
        self, user: Person, view_id: str, values: dict[str, str], close: bool
    ) -> dict[str, Any]:
        """Closes the modal, or sends its inputs as a signed ``view_submission``; answers
        ``response_action: errors`` by handing the errors back to the page."""
        view = self.open_view(user.id)
        if view is None or str(view.get("id")) != view_id:
            return {"ok": False, "error": "That dialog is no longer open."}
        if close:
            self.closed_views.add(view_id)
            await self.changed()
            return {"ok": True}
        state: dict[str, Any] = {}
        for (block_id, action_id), kind in input_types(view).items():
            value = values.get(f"{block_id}/{action_id}", "")
            state.setdefault(block_id, {})[action_id] = {"type": kind, "value": value or None}
        body = slack_payloads.view_submission(
            str(view.get("callback_id", "")), str(view.get("private_metadata", "")), state, user.id
        )
        response = await self._send(body)
        if response.status_code != 200:
            return {"ok": False, "error": f"The bot answered HTTP {response.status_code}."}
        answer: Any = {}
        if response.content.strip():
            try:
                answer = response.json()
            except ValueError:
                answer = {}
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if action == "errors":
            return {"ok": False, "errors": answer.get("errors", {})}
        if action in ("update", "push") and isinstance(answer.get("view"), dict):
            self.replaced_views[view_id] = {**answer["view"], "id": view_id}
        else:
            self.closed_views.add(view_id)
        await self.changed()
        return {"ok": True}

    async def open_home(self, user: Person) -> dict[str, Any]:
        """The person opens the app's Home tab: Slack sends ``app_home_opened`` and shows
        the view the bot publishes for them with ``views.publish``."""
        before = self.slack.home.get(user.id)
        event = {
            "type": "app_home_opened",
            "user": user.id,
            "channel": f"D0{user.id[2:]}",
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        }
        body = slack_payloads.event_callback(event)
        headers = slack_payloads.signed_headers(self._secret, body)
        headers["content-type"] = "application/json"
        response = await self.http.post("/slack/events", content=body.encode(), headers=headers)
        # the bot reads every target's live deployment for the view, through its Cloudflare
        # call budget: after a busy spell that can take a while, so wait as a person would
        deadline = time.monotonic() + 30
        while self.slack.home.get(user.id) is before and time.monotonic() < deadline:
            await self.slack.wait_changed(0.2)
        view = self.slack.home.get(user.id)
        if view is None:
            return {"ok": False, "status": response.status_code, "html": ""}
        render = ChannelView(self.slack.users, user)
        html = render.blocks.blocks(list(view.get("blocks") or []), f"home:{user.id}")
        return {"ok": True, "status": response.status_code, "html": html}
