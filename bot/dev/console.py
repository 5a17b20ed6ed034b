"""The terminal console of ``releasebot dev``: type ``/release ...`` as a chosen person, see
what the bot says (cards, threads, ephemeral answers), click a button by its label.

A button with a ``confirm`` object asks first, as Slack does; a modal the bot opens for a
click (the reject reason) is asked field by field and sent as a ``view_submission``. A
command that goes wrong is reported on its line and the console carries on: a typo or a
surprise in a message never takes ``releasebot dev`` down.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bot.dev import slack_payloads
from bot.dev.render import plain, render_message
from bot.dev.slack_standin import Message, StandinState
from bot.dev.web_mrkdwn import channel_name

log = logging.getLogger("releasebot.dev.console")

HELP = """\
  /release ...             send a slash command as the current person
  as <name>                act as someone else: {people}
  click <Label> [R-n]      click a button on the newest card (or R-n's card)
  show                     print the channel again
  who                      who you are now
  help | quit"""

# How long a click waits for the modal the bot may open for it (the bot acks first).
VIEW_WAIT = 3.0
_KEY = re.compile(r"R-\d+", re.IGNORECASE)

Block = dict[str, Any]


@dataclass(frozen=True)
class Question:
    """What the next line typed answers (a confirm dialog, a modal's field)."""

    prompt: str
    answer: Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Field:
    """One input of a modal, as ``state.values`` names it."""

    block_id: str
    action_id: str
    kind: str
    label: str
    optional: bool


def card_key(msg: Message) -> str | None:
    """The release key (``R-2``) a card is about: the start of its text or of its header."""
    texts = [msg.text] + [
        str((b.get("text") or {}).get("text", ""))
        for b in msg.blocks
        if isinstance(b, dict) and b.get("type") == "header" and isinstance(b.get("text"), dict)
    ]
    for text in texts:
        found = _KEY.match(text.strip())
        if found:
            return found.group(0).upper()
    return None


def buttons(msg: Message) -> list[tuple[Block, Block]]:
    """``(block, button)`` for every button on a message: in actions blocks and as section
    accessories. Anything else (context texts, images, selects) is not a button."""
    found: list[tuple[Block, Block]] = []
    for block in msg.blocks:
        if not isinstance(block, dict):
            continue
        candidates: list[Any] = []
        if block.get("type") == "actions":
            candidates = list(block.get("elements") or [])
        elif block.get("type") == "section":
            candidates = [block.get("accessory")]
        for element in candidates:
            if isinstance(element, dict) and element.get("type") == "button":
                found.append((block, element))
    return found


def button_label(button: Block) -> str:
    text = button.get("text")
    return str(text.get("text", "")) if isinstance(text, dict) else str(text or "")


def modal_fields(view: Block) -> list[Field]:
    fields = []
    for block in view.get("blocks") or []:
        if not isinstance(block, dict) or block.get("type") != "input":
            continue
        element = block.get("element") or {}
        label = block.get("label")
        fields.append(
            Field(
                str(block.get("block_id", "")),
                str(element.get("action_id", "")),
                str(element.get("type", "plain_text_input")),
                str(label.get("text", "")) if isinstance(label, dict) else "",
                bool(block.get("optional", False)),
            )
        )
    return fields


class Console:
    def __init__(
        self,
        bot_url: str,
        standin: StandinState,
        signing_secret: str,
        channel: str,
        command: str = "/release",
        transport: httpx.AsyncBaseTransport | None = None,
        view_wait: float = VIEW_WAIT,
    ) -> None:
        """``transport`` replaces the network to the bot (tests pass their own); ``view_wait``
        is how long a click waits for the bot to answer it before the prompt comes back."""
        self.bot_url = bot_url
        self.slack = standin
        self.secret = signing_secret
        self.channel = channel
        self.command = command
        self.user = "U0CAROL"
        self.asking: Question | None = None
        self._shown: dict[str, int] = {}
        self._triggers: dict[str, float] = {}  # clicks that may open a modal → until when
        self.view_wait = view_wait
        self.http = httpx.AsyncClient(base_url=bot_url, timeout=10, transport=transport)

    def _name_to_id(self, name: str) -> str | None:
        wanted = name.lstrip("@").lower()
        for uid, user in self.slack.users.items():
            if user["name"] == wanted or uid.lower() == wanted:
                return uid
        return None

    def _name(self, uid: str) -> str:
        return str(self.slack.users.get(uid, {}).get("name", uid))

    def prompt(self) -> str:
        return self.asking.prompt if self.asking else f"{self._name(self.user)}> "

    async def _post(self, body: str) -> httpx.Response:
        headers = slack_payloads.signed_headers(self.secret, body)
        return await self.http.post("/slack/events", content=body, headers=headers)

    @staticmethod
    def _answer(response: httpx.Response) -> dict[str, Any]:
        """The JSON body of an ack (``{}`` when empty), or its text as ``{"text": ...}``."""
        if not response.text.strip():
            return {}
        if response.headers.get("content-type", "").startswith("application/json"):
            data = response.json()
            return data if isinstance(data, dict) else {"text": str(data)}
        return {"text": response.text}

    async def send_command(self, text: str) -> None:
        body = slack_payloads.slash_command(
            text, self.user, self.channel, self.command, self._name(self.user)
        )
        response = await self._post(body)
        if response.status_code != 200:
            print(f"  ! the bot answered HTTP {response.status_code}")
            return
        ack = self._answer(response)
        if ack:
            message = {
                "text": str(ack.get("text", "")),
                "blocks": ack.get("blocks"),
                "ephemeral_for": self.user,
            }
            print(render_message(message, self.slack.users))

    # -- buttons ------------------------------------------------------------------------------

    def find_button(self, label: str, key: str | None) -> tuple[Message, Block, Block] | None:
        """The newest top-level card (``key``'s card if given) with a button called ``label``."""
        for msg in reversed(self.slack.channel_messages(self.channel)):
            if msg.thread_ts or (key and card_key(msg) != key.upper()):
                continue
            for block, button in buttons(msg):
                if button_label(button).lower() == label.lower():
                    return msg, block, button
        return None

    async def click(self, label: str, key: str | None) -> None:
        found = self.find_button(label, key)
        if found is None:
            print(f"  ! no button labelled '{label}'" + (f" on {key}'s card" if key else ""))
            return
        msg, block, button = found
        confirm = button.get("confirm")
        if not isinstance(confirm, dict):
            await self.press(msg, block, button)
            return

        title = plain(str((confirm.get("title") or {}).get("text", "Are you sure?")), self.users)
        text = plain(str((confirm.get("text") or {}).get("text", "")), self.users)
        yes = str((confirm.get("confirm") or {}).get("text", "Yes"))
        print(f"  ┃ {title}")
        for line in text.splitlines():
            print(f"    {line}")

        async def answered(reply: str) -> None:
            if reply.strip().lower() in ("y", "yes", yes.lower()):
                await self.press(msg, block, button)
            else:
                print("  (not clicked)")

        self.asking = Question(f"  {yes}? [y/N] ", answered)

    async def press(self, msg: Message, block: Block, button: Block) -> None:
        trigger = slack_payloads.trigger_id()
        body = slack_payloads.block_action(
            str(button.get("action_id", "")),
            str(button.get("value", "")),
            self.user,
            msg.channel,
            msg.ts,
            str(block.get("block_id", "")),
            button_label(button),
            trigger=trigger,
        )
        calls = len(self.slack.calls)
        response = await self._post(body)
        if response.status_code != 200:
            print(f"  ! the bot answered HTTP {response.status_code}")
            return
        self._triggers[trigger] = time.monotonic() + max(self.view_wait, 10.0)
        await self.first_answer(calls)
        await self.open_views()

    async def first_answer(self, calls: int) -> None:
        """Until the bot posts, edits or opens something after the click (it acks first and
        works in the background), at most ``view_wait`` seconds."""
        deadline = time.monotonic() + self.view_wait
        while time.monotonic() < deadline:
            if any(name.startswith(("chat.", "views.")) for name, _ in self.slack.calls[calls:]):
                return
            await self.slack.wait_changed(max(min(deadline - time.monotonic(), 0.2), 0.0))

    async def open_views(self) -> bool:
        """Asks for the modal the bot opened for one of this console's clicks, if any (a
        late one is caught by the watcher); True when one was found."""
        now = time.monotonic()
        self._triggers = {t: until for t, until in self._triggers.items() if until > now}
        if self.asking is not None or not self._triggers:
            return False
        for view in self.slack.views:
            if self._triggers.pop(str(view.get("trigger_id")), None) is not None:
                await self.fill(view, modal_fields(view), {})
                return True
        return False

    # -- modals -------------------------------------------------------------------------------

    async def fill(self, view: Block, fields: list[Field], values: dict[str, Any]) -> None:
        """Asks the next unanswered field of ``view``; submits once every field has its say."""
        title = plain(str((view.get("title") or {}).get("text", "Dialog")), self.users)
        todo = [f for f in fields if f.block_id not in values]
        if not todo:
            self.asking = None
            await self.submit(view, fields, values)
            return
        field = todo[0]
        if len(todo) == len(fields) and not values:
            print(f"  ┃ {title} (an empty answer cancels)")

        async def answered(reply: str) -> None:
            if not reply.strip() and not field.optional:
                print(f"  ({title}: cancelled)")
                return
            values[field.block_id] = {
                field.action_id: {"type": field.kind, "value": reply.strip() or None}
            }
            await self.fill(view, fields, values)

        hint = " (optional)" if field.optional else ""
        self.asking = Question(f"  {field.label or field.action_id}{hint}: ", answered)

    async def submit(self, view: Block, fields: list[Field], values: dict[str, Any]) -> None:
        body = slack_payloads.view_submission(
            str(view.get("callback_id", "")),
            str(view.get("private_metadata", "")),
            values,
            self.user,
        )
        response = await self._post(body)
        if response.status_code != 200:
            print(f"  ! the bot answered HTTP {response.status_code}")
            return
        answer = self._answer(response)
        if answer.get("response_action") == "errors":
            errors = answer.get("errors") or {}
            for block_id, error in errors.items():
                print(f"  ! {error}")
                values.pop(block_id, None)
            await self.fill(view, fields, values)

    # -- the channel --------------------------------------------------------------------------

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        return self.slack.users

    def show_changes(self, everything: bool = False) -> None:
        for msg in self.slack.messages:
            if msg.channel != self.channel and msg.ephemeral_for is None:
                continue
            if msg.ephemeral_for and msg.ephemeral_for != self.user:
                continue
            key = f"{msg.channel}:{msg.ts}"
            if not everything and self._shown.get(key) == msg.edits:
                continue
            edited = key in self._shown and not everything
            self._shown[key] = msg.edits
            rendered = render_message(msg.as_dict(), self.slack.users)
            print(("(updated) " if edited else "") + rendered)

    async def watch(self) -> None:
        while True:
            await self.slack.wait_changed(1.0)
            await asyncio.sleep(0.05)  # let a burst of edits settle into one print
            try:
                self.show_changes()
                if await self.open_views():  # a modal that came late: ask for it now
                    print(self.prompt(), end="", flush=True)
            except Exception:  # a message this renderer does not expect must not stop it
                log.exception("could not print a message")

    async def handle(self, line: str) -> bool:
        """One line typed; False to quit. Errors are printed, never raised."""
        try:
            return await self._handle(line)
        except Exception as exc:
            log.debug("console command failed", exc_info=True)
            print(f"  ! that went wrong ({type(exc).__name__}: {exc}); the console carries on")
            return True

    async def _handle(self, line: str) -> bool:
        if self.asking is not None:
            question, self.asking = self.asking, None
            await question.answer(line)
            return True
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            name, _, rest = line.partition(" ")
            if name != self.command:
                print(f"  ! the bot answers {self.command}")
                return True
            await self.send_command(rest)
            return True
        try:
            words = shlex.split(line)
        except ValueError as exc:
            print(f"  ! {exc}")
            return True
        verb, args = words[0].lower(), words[1:]
        if verb in ("quit", "exit"):
            return False
        if verb == "as" and args:
            uid = self._name_to_id(args[0])
            if uid is None:
                print(f"  ! nobody called {args[0]}; people: {self.people()}")
            else:
                self.user = uid
                print(f"  you are now {self._name(uid)} ({uid})")
        elif verb == "click" and args:
            key = args[1] if len(args) > 1 else None
            await self.click(args[0], key)
        elif verb == "show":
            self.show_changes(everything=True)
        elif verb == "who":
            print(f"  {self._name(self.user)} ({self.user})")
        else:
            print(HELP.format(people=self.people()))
        return True

    def people(self) -> str:
        return ", ".join(u["name"] for u in self.slack.users.values())

    async def run(self) -> None:
        print(f"releasebot console · channel #{channel_name(self.channel)} · type 'help'")
        print(HELP.format(people=self.people()))
        watcher = asyncio.create_task(self.watch())
        try:
            while True:
                try:
                    line = await asyncio.to_thread(input, self.prompt())
                except EOFError:
                    break
                if not await self.handle(line):
                    break
        finally:
            watcher.cancel()
            await self.http.aclose()
