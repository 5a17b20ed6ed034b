"""``releasebot run`` in Socket Mode, against local stand-ins for Slack's Web API and its
Socket Mode websocket, and the Cloudflare simulator.

The bot is the real process, configured only through its environment (``SLACK_APP_TOKEN``
set, no signing secret). It must fetch the websocket address with ``apps.connections.open``,
acknowledge every envelope by its id, serve commands and button clicks as in HTTP mode, come
back after Slack recycles the connection, and answer ``/healthz`` on ``PORT``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from bot.dev import slack_payloads
from bot.dev.slack_standin import StandinState
from tests.fixtures.bot import AUDIT_KEY, BOT_TOKEN, RELEASES, SIGNING_SECRET, config_data
from tests.fixtures.processes import BotProcess, write_config
from tests.fixtures.servers import ServerThread, free_port
from tests.fixtures.socket_mode import SocketModeStandin

pytestmark = pytest.mark.slow

APP_TOKEN = "xapp-1-A0RELEASEBOT-4242-socketsecret9f3e"


class SocketWorld:
    def __init__(self, bot: BotProcess, ws: SocketModeStandin, slack: StandinState, cf: Any):
        self.bot = bot
        self.ws = ws
        self.slack = slack
        self.cf = cf

    def card(self, key: str) -> Any:
        for m in self.slack.channel_messages(RELEASES):
            if m.thread_ts is None and m.blocks and m.text.startswith(f"{key} "):
                return m
        return None

    def wait_for(self, check: Any, timeout: float = 20, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}\n{self.bot.log_tail()}")

    def click_payload(self, label: str, key: str, user: str) -> dict[str, Any]:
        """The block_actions payload Slack sends when ``user`` clicks ``label`` on a card."""
        card = self.card(key)
        assert card is not None, f"no card for {key}"
        for block in card.blocks:
            for element in block.get("elements", []):
                if element.get("type") == "button" and element["text"]["text"] == label:
                    body = slack_payloads.block_action(
                        element["action_id"],
                        element["value"],
                        user,
                        card.channel,
                        card.ts,
                        block.get("block_id", ""),
                        label,
                    )
                    return json.loads(unquote(body.removeprefix("payload=")))
        raise AssertionError(f"{key}'s card has no '{label}' button")

    def connections_opened(self) -> int:
        return len(self.slack.calls_to("apps.connections.open"))


@pytest.fixture
def socket_world(
    sqlite_url: str,
    cf_server: Any,
    slack_standin: tuple[ServerThread, StandinState],
    tmp_path: Path,
) -> Iterator[SocketWorld]:
    slack_server, slack_state = slack_standin
    with SocketModeStandin() as ws:
        slack_state.socket_url = ws.url
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "RELEASEBOT_AUDIT_KEY": AUDIT_KEY,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_URL": f"{slack_server.url}/api/",
            "CLOUDFLARE_API_TOKEN": cf_server.token,
            "CLOUDFLARE_API_BASE_URL": cf_server.base_url,
            "DATABASE_URL": sqlite_url,
            "RELEASEBOT_CONFIG": str(write_config(tmp_path / "releasebot.yml", config_data())),
            "PORT": str(port),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "console",
            "PYTHONUNBUFFERED": "1",
        }
        bot = BotProcess("socket-bot", env, port, tmp_path / "socket-bot.log")
        try:
            bot.start().wait_ready()
            yield SocketWorld(bot, ws, slack_state, cf_server.state)
        finally:
            bot.close()
        log = bot.log_text()
        for secret in (APP_TOKEN, BOT_TOKEN, cf_server.token):
            assert secret not in log, "a secret reached the log"
        assert "Traceback" not in log, log


def test_socket_mode_serves_commands_and_clicks_and_survives_a_refresh(
    socket_world: SocketWorld,
) -> None:
    w = socket_world
    # Connected by the time /healthz answers, through apps.connections.open with the app token.
    first = w.ws.wait_connections(1)
    assert first.query.get("ticket") is not None
    assert w.connections_opened() == 1
    assert w.bot.http.get("/healthz").status_code == 200

    # A staging deploy, typed as a slash command and delivered over the websocket.
    staging = w.ws.slash_command("deploy tax-api v1.4.2 to staging")
    ack = w.ws.wait_ack(staging, timeout=3)
    assert ack == {"envelope_id": staging} or set(ack) == {"envelope_id", "payload"}
    w.wait_for(
        lambda: (c := w.card("R-1")) and "Succeeded" in str(c.blocks), what="R-1's card: Succeeded"
    )
    new = w.cf.version_id("tax-api-staging", "v1.4.2")
    posts = [p for p in w.cf.deployment_posts if p["script"] == "tax-api-staging"]
    assert [p["body"]["versions"] for p in posts] == [[{"version_id": new, "percentage": 100}]]

    # A mistyped command: the usage goes back in the ack's payload, for Slack to show.
    typo = w.ws.slash_command("deploy tax-api")
    typo_ack = w.ws.wait_ack(typo, timeout=3)
    assert "/release" in json.dumps(typo_ack.get("payload", {})), typo_ack

    # A production deploy, and an approver's click delivered as an interactive envelope.
    production = w.ws.slash_command("deploy tax-api v1.4.2 to production")
    w.ws.wait_ack(production, timeout=3)
    w.wait_for(
        lambda: (c := w.card("R-2")) and "Approve" in str(c.blocks), what="R-2's Approve button"
    )
    click = w.ws.interactive(w.click_payload("Approve", "R-2", "U0ALICE"))
    assert w.ws.wait_ack(click, timeout=3)["envelope_id"] == click
    w.wait_for(
        lambda: "1 of 2 approvals: <@U0ALICE>" in str(w.card("R-2").blocks),
        what="Alice's approval on R-2's card",
    )

    # Slack recycles the connection: the bot asks for a new address and reconnects.
    w.ws.disconnect("refresh_requested")
    second = w.ws.wait_connections(2)
    assert second is not first
    w.wait_for(lambda: first.closed, timeout=5, what="the old connection to close")
    assert w.connections_opened() >= 2

    # ... and keeps serving: another command, and a click on the earlier card.
    again = w.ws.slash_command("deploy tax-web v1.4.2 to staging", user_id="U0BOB")
    w.ws.wait_ack(again, timeout=3)
    w.wait_for(
        lambda: (c := w.card("R-3")) and "Succeeded" in str(c.blocks), what="R-3's card: Succeeded"
    )
    refused = w.ws.interactive(w.click_payload("Approve", "R-2", "U0ALICE"))
    w.ws.wait_ack(refused, timeout=3)
    w.wait_for(
        lambda: any("already recorded" in m.text for m in w.slack.ephemerals_for("U0ALICE")),
        what="the refusal of Alice's second vote",
    )
    # Every envelope was acknowledged exactly by its id, on the connection it came in on.
    assert set(w.ws.acks) == {e["envelope_id"] for e in w.ws.sent}
    assert w.bot.http.get("/healthz").status_code == 200

    # A polite stop (SIGTERM) closes the websocket and exits 0.
    started = time.monotonic()
    w.bot.stop()
    assert w.bot.proc is not None and w.bot.proc.returncode == 0, w.bot.log_tail()
    assert time.monotonic() - started < 8
    w.ws.wait_closed(timeout=5)


def test_socket_mode_refuses_slack_requests_over_http(socket_world: SocketWorld) -> None:
    """With Socket Mode, Slack's requests come over the websocket only: nothing on PORT may
    pose as Slack (no signature is checked there), signed or not."""
    w = socket_world
    body = slack_payloads.slash_command("deploy tax-api v1.4.2 to staging", "U0MALLORY", RELEASES)
    unsigned = w.bot.http.post(
        "/slack/events",
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    signed = w.bot.http.post(
        "/slack/events",
        content=body.encode(),
        headers=slack_payloads.signed_headers(SIGNING_SECRET, body),
    )
    assert unsigned.status_code == 404 and signed.status_code == 404
    w.ws.wait_ack(w.ws.slash_command("status", user_id="U0MALLORY"), timeout=3)
    w.wait_for(lambda: w.slack.ephemerals_for("U0MALLORY"), what="the status answer")
    assert w.slack.calls_to("chat.postMessage") == []
    assert w.cf.deployment_posts == []
