"""The terminal console of ``releasebot dev``: type ``/release ...`` as a chosen person, see
what the bot says (cards, threads, ephemeral answers), click a button by its label."""

from __future__ import annotations

import asyncio
import shlex

import httpx

from bot.dev import slack_payloads
from bot.dev.render import render_message
from bot.dev.slack_standin import StandinState

HELP = """\
  /release ...             send a slash command as the current person
  as <name>                act as someone else: {people}
  click <Label> [R-n]      click a button on the newest card (or R-n's card)
  show                     print the channel again
  who                      who you are now
  help | quit"""


class Console:
    def __init__(
        self,
        bot_url: str,
        standin: StandinState,
        signing_secret: str,
        channel: str,
        command: str = "/release",
    ) -> None:
        self.bot_url = bot_url
        self.slack = standin
        self.secret = signing_secret
        self.channel = channel
        self.command = command
        self.user = "U0CAROL"
        self._shown: dict[str, int] = {}
        self.http = httpx.AsyncClient(base_url=bot_url, timeout=10)

    def _name_to_id(self, name: str) -> str | None:
        wanted = name.lstrip("@").lower()
        for uid, user in self.slack.users.items():
            if user["name"] == wanted or uid.lower() == wanted:
                return uid
        return None

    def _name(self, uid: str) -> str:
        return str(self.slack.users.get(uid, {}).get("name", uid))

    async def _post(self, body: str) -> httpx.Response:
        headers = slack_payloads.signed_headers(self.secret, body)
        return await self.http.post("/slack/events", content=body, headers=headers)

    async def send_command(self, text: str) -> None:
        body = slack_payloads.slash_command(
            text, self.user, self.channel, self.command, self._name(self.user)
        )
        response = await self._post(body)
        if response.status_code != 200:
            print(f"  ! the bot answered HTTP {response.status_code}")
        elif response.text.strip():
            ack = (
                response.json()
                if response.headers.get("content-type", "").startswith("application/json")
                else {"text": response.text}
            )
            print(
                render_message(
                    {
                        "text": ack.get("text", ""),
                        "blocks": ack.get("blocks"),
                        "ephemeral_for": self.user,
                    },
                    self.slack.users,
                )
            )

    async def click(self, label: str, key: str | None) -> None:
        for msg in reversed(self.slack.channel_messages(self.channel)):
            if msg.thread_ts or (key and not msg.text.upper().startswith(key.upper() + " ")):
                continue
            for block in msg.blocks:
                for element in block.get("elements", []):
                    text = element.get("text", {}).get("text", "")
                    if element.get("type") == "button" and text.lower() == label.lower():
                        body = slack_payloads.block_action(
                            element["action_id"],
                            element.get("value", ""),
                            self.user,
                            msg.channel,
                            msg.ts,
                            block.get("block_id", ""),
                            text,
                        )
                        response = await self._post(body)
                        if response.status_code != 200:
                            print(f"  ! the bot answered HTTP {response.status_code}")
                        return
        print(f"  ! no button labelled '{label}'" + (f" on {key}'s card" if key else ""))

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
            self.show_changes()

    async def handle(self, line: str) -> bool:
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
        print(f"releasebot console · channel #{self.channel.lower()} · type 'help'")
        print(HELP.format(people=self.people()))
        watcher = asyncio.create_task(self.watch())
        try:
            while True:
                prompt = f"{self._name(self.user)}> "
                try:
                    line = await asyncio.to_thread(input, prompt)
                except EOFError:
                    break
                if not await self.handle(line):
                    break
        finally:
            watcher.cancel()
            await self.http.aclose()
