"""A stand-in for Slack's Web API, for ``releasebot dev`` and the end-to-end tests.

It answers the methods the bot calls, the way Slack does (POST, JSON or form bodies, a Bearer
``xoxb-`` token; ``{"ok": false, "error": ...}`` on misuse), keeps channels, threads and
ephemeral messages so a person or a test can see what the bot said, and can be told to answer
429 or 5xx. It is a fake: nothing here talks to Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BOT_USER_ID = "U0RELEASEBOT"
BOT_ID = "B0RELEASEBOT"
TEAM_ID = "T0BATTLEBORN"
MAX_BLOCKS = 50


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    ephemeral_for: str | None = None
    edits: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "ts": self.ts,
            "user": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "thread_ts": self.thread_ts,
            "ephemeral_for": self.ephemeral_for,
            "edits": self.edits,
        }


@dataclass
class Fault:
    method: str
    status: int
    count: int
    retry_after: int | None = None
    channel: str | None = None  # only calls for this channel (None: any)


@dataclass
class StandinState:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)
    home: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    # Socket Mode: the websocket address ``apps.connections.open`` hands out (None: off).
    socket_url: str | None = None
    # Tokens Slack does not know: every method answers ``invalid_auth`` to them.
    rejected_tokens: set[str] = field(default_factory=lambda: {"xoxb-invalid", "xapp-invalid"})
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None

    def add_user(self, user_id: str, name: str, tz: str = "America/Los_Angeles") -> None:
        self.users[user_id] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": name.title(),
            "tz": tz,
            "tz_offset": -28800 if tz == "America/Los_Angeles" else 0,
            "is_bot": False,
            "profile": {"display_name": name, "real_name": name.title()},
        }

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def find(self, channel: str, ts: str) -> Message | None:
        for m in self.messages:
            if m.channel == channel and m.ts == ts and m.ephemeral_for is None:
                return m
        return None

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == method]

    def channel_messages(self, channel: str) -> list[Message]:
        return [m for m in self.messages if m.channel == channel and m.ephemeral_for is None]

    def ephemerals_for(self, user: str) -> list[Message]:
        return [m for m in self.messages if m.ephemeral_for == user]

    def inject(
        self,
        method: str,
        status: int,
        count: int = 1,
        retry_after: int | None = None,
        channel: str | None = None,
    ) -> None:
        self.faults.append(Fault(method, status, count, retry_after, channel))

    def seed_example(self) -> None:
        """The people of the example workspace: a requester, two approvers, an outsider."""
        self.add_user("U0CAROL", "carol")
        self.add_user("U0ALICE", "alice")
        self.add_user("U0BOB", "bob", tz="America/New_York")
        self.add_user("U0MALLORY", "mallory", tz="Europe/London")
        self.usergroups["S0RELEASEMGRS"] = ["U0CAROL", "U0BOB", "U0DAVE"]

    async def wait_changed(self, within: float) -> None:
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), within)

    async def notify(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            self._changed.notify_all()


def _fail(error: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error}, status_code=status)


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]] | str:
    raw = args.get("blocks")
    if raw in (None, ""):
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return "invalid_blocks_format"
    if not isinstance(raw, list) or len(raw) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in raw:
        if not isinstance(block, dict):
            return "invalid_blocks"
        text = block.get("text")
        text = text.get("text", "") if isinstance(text, dict) else ""
        if len(text) > (150 if block.get("type") == "header" else 3000):
            return "invalid_blocks"
        for element in block.get("elements", []):
            is_button = isinstance(element, dict) and element.get("type") == "button"
            if is_button and len(element.get("text", {}).get("text", "")) > 75:
                return "invalid_blocks"
    return raw


def create_standin(state: StandinState | None = None) -> Starlette:
    st = state or StandinState()

    async def api(request: Request) -> Response:
        method = request.path_params["method"]
        auth = request.headers.get("authorization", "")
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        args: dict[str, Any]
        if "json" in ctype:
            try:
                args = json.loads(raw or b"{}")
            except ValueError:
                return _fail("invalid_json")
        else:
            args = dict(parse_qsl(raw.decode()))
            args.update(dict(request.query_params))
        token = auth.removeprefix("Bearer ").strip() or str(args.get("token", ""))
        if token in st.rejected_tokens:
            return _fail("invalid_auth")
        if method == "apps.connections.open":
            # The one method that takes the app-level token (xapp-), and only that one.
            if not token.startswith("xapp-"):
                return _fail("not_allowed_token_type" if token else "not_authed")
        elif not auth.startswith("Bearer xoxb-") and "token" not in args:
            return _fail("not_authed")
        st.calls.append((method, args))
        for fault in st.faults:
            if (
                fault.method in (method, "*")
                and fault.count > 0
                and fault.channel in (None, args.get("channel"))
            ):
                fault.count -= 1
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                error = "ratelimited" if fault.status == 429 else "internal_error"
                return JSONResponse(
                    {"ok": False, "error": error}, status_code=fault.status, headers=headers
                )
        handler = METHODS.get(method)
        if handler is None:
            return _fail("unknown_method", 404)
        response = await handler(st, args)
        await st.notify()
        return response

    async def control_messages(request: Request) -> Response:
        channel = request.query_params.get("channel")
        rows = [m.as_dict() for m in st.messages if channel is None or m.channel == channel]
        return JSONResponse({"messages": rows, "users": st.users})

    async def control_wait(request: Request) -> Response:
        await st.wait_changed(float(request.query_params.get("timeout", "20")))
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/api/{method}", api, methods=["POST", "GET"]),
            Route("/__standin/messages", control_messages),
            Route("/__standin/wait", control_wait),
        ]
    )


async def _auth_test(st: StandinState, args: dict[str, Any]) -> Response:
    return JSONResponse(
        {
            "ok": True,
            "url": "https://battleborn.example/",
            "team": "Battle Born",
            "user": "releasebot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
        }
    )


async def _post_message(st: StandinState, args: dict[str, Any]) -> Response:
    channel = args.get("channel")
    if not channel:
        return _fail("channel_not_found")
    blocks = _blocks(args)
    if isinstance(blocks, str):
        return _fail(blocks)
    if not args.get("text") and not blocks:
        return _fail("no_text")
    thread = args.get("thread_ts")
    if thread and st.find(channel, thread) is None:
        return _fail("thread_not_found")
    msg = Message(channel, st.next_ts(), BOT_USER_ID, args.get("text", ""), blocks, thread)
    st.messages.append(msg)
    return JSONResponse({"ok": True, "channel": channel, "ts": msg.ts, "message": msg.as_dict()})


async def _update(st: StandinState, args: dict[str, Any]) -> Response:
    msg = st.find(args.get("channel", ""), args.get("ts", ""))
    if msg is None:
        return _fail("message_not_found")
    blocks = _blocks(args)
    if isinstance(blocks, str):
        return _fail(blocks)
    msg.text = args.get("text", msg.text)
    msg.blocks = blocks or msg.blocks
    msg.edits += 1
    return JSONResponse({"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text})


async def _post_ephemeral(st: StandinState, args: dict[str, Any]) -> Response:
    channel, user = args.get("channel"), args.get("user")
    if not channel:
        return _fail("channel_not_found")
    if not user or user not in st.users:
        return _fail("user_not_in_channel")
    blocks = _blocks(args)
    if isinstance(blocks, str):
        return _fail(blocks)
    msg = Message(
        channel,
        st.next_ts(),
        BOT_USER_ID,
        args.get("text", ""),
        blocks,
        args.get("thread_ts"),
        ephemeral_for=user,
    )
    st.messages.append(msg)
    return JSONResponse({"ok": True, "message_ts": msg.ts})


async def _permalink(st: StandinState, args: dict[str, Any]) -> Response:
    channel, ts = args.get("channel", ""), args.get("message_ts", "")
    if st.find(channel, ts) is None:
        return _fail("message_not_found")
    link = f"https://battleborn.example/archives/{channel}/p{ts.replace('.', '')}"
    return JSONResponse({"ok": True, "channel": channel, "permalink": link})


async def _views_open(st: StandinState, args: dict[str, Any]) -> Response:
    view = args.get("view")
    if isinstance(view, str):
        view = json.loads(view)
    if not args.get("trigger_id") or not isinstance(view, dict):
        return _fail("invalid_arguments")
    opened = {"id": f"V{len(st.views) + 1:08d}", **view, "trigger_id": args["trigger_id"]}
    st.views.append(opened)
    return JSONResponse({"ok": True, "view": opened})


async def _views_publish(st: StandinState, args: dict[str, Any]) -> Response:
    view = args.get("view")
    if isinstance(view, str):
        view = json.loads(view)
    if not isinstance(view, dict):
        return _fail("invalid_arguments")
    user = args.get("user_id", "")
    if user not in st.users:
        return _fail("user_not_found")
    st.home[user] = view
    return JSONResponse({"ok": True, "view": {"id": f"VH{user}", **view}})


async def _users_info(st: StandinState, args: dict[str, Any]) -> Response:
    user = st.users.get(args.get("user", ""))
    if user is None:
        return _fail("user_not_found")
    return JSONResponse({"ok": True, "user": user})


async def _group_users(st: StandinState, args: dict[str, Any]) -> Response:
    members = st.usergroups.get(args.get("usergroup", ""))
    if members is None:
        return _fail("no_such_subteam")
    return JSONResponse({"ok": True, "users": members})


async def _conversations_info(st: StandinState, args: dict[str, Any]) -> Response:
    channel = args.get("channel", "")
    return JSONResponse({"ok": True, "channel": {"id": channel, "name": channel.lower()}})


async def _conversations_history(st: StandinState, args: dict[str, Any]) -> Response:
    """A channel's top-level messages, newest first, paged by an opaque ``cursor`` (``limit``
    defaults to 100, at most 999), as Slack's ``conversations.history`` answers."""
    channel = args.get("channel", "")
    if not channel:
        return _fail("channel_not_found")
    try:
        limit = min(max(int(args.get("limit") or 100), 1), 999)
        start = int(args.get("cursor") or 0)
    except ValueError:
        return _fail("invalid_cursor")
    newest_first = [m for m in reversed(st.channel_messages(channel)) if m.thread_ts is None]
    page = newest_first[start : start + limit]
    more = start + limit < len(newest_first)
    return JSONResponse(
        {
            "ok": True,
            "messages": [
                # A message the app posted carries its bot_id besides the bot user's id.
                {"type": "message", "user": m.user, "text": m.text, "ts": m.ts}
                | ({"bot_id": BOT_ID} if m.user == BOT_USER_ID else {})
                for m in page
            ],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }
    )


async def _connections_open(st: StandinState, args: dict[str, Any]) -> Response:
    """A fresh websocket address for each call, as Slack hands out (``?ticket=...``)."""
    if st.socket_url is None:
        return _fail("not_allowed")
    ticket = sum(1 for name, _ in st.calls if name == "apps.connections.open")
    return JSONResponse({"ok": True, "url": f"{st.socket_url}?ticket={ticket}&app_id=A0RELEASEBOT"})


async def _ok(st: StandinState, args: dict[str, Any]) -> Response:
    return JSONResponse({"ok": True})


METHODS = {
    "auth.test": _auth_test,
    "apps.connections.open": _connections_open,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": _post_ephemeral,
    "chat.getPermalink": _permalink,
    "views.open": _views_open,
    "views.update": _views_open,
    "views.publish": _views_publish,
    "users.info": _users_info,
    "usergroups.users.list": _group_users,
    "conversations.info": _conversations_info,
    "conversations.history": _conversations_history,
    "reactions.add": _ok,
}
