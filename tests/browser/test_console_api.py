"""The browser console's own endpoints over ASGI: what the page asks for is signed and sent
to the bot as Slack would send it, answers land where Slack would show them, and the signing
secret never reaches the page. The bot here is a recording stand-in that checks signatures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import __version__
from bot.cloudflare.simulator import SimulatorState, create_simulator
from bot.config import parse_config
from bot.dev.devserver import dev_config
from bot.dev.slack_standin import BOT_USER_ID, Message, StandinState
from bot.dev.web_console import WebConsole
from bot.slack import ids
from tests.browser.stack import DevStack
from tests.browser.test_console_render import CARD, REJECT_VIEW

SECRET = "console-api-5ecret-0b7d"
CHANNEL = "C0RELEASES"


class RecordingBot:
    """Answers ``POST /slack/events`` like the bot would, after checking the signature."""

    def __init__(self, slack: StandinState) -> None:
        self.slack = slack
        self.seen: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/slack/events", self.events, methods=["POST"])])

    async def events(self, request: Request) -> Response:
        raw = (await request.body()).decode()
        valid = SignatureVerifier(SECRET).is_valid(
            raw,
            request.headers.get("x-slack-request-timestamp", ""),
            request.headers.get("x-slack-signature", ""),
        )
        if not valid:
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        form = dict(parse_qsl(raw))
        data = json.loads(form["payload"]) if "payload" in form else form
        self.seen.append(data)
        if data.get("command"):
            if data["text"].startswith("deploy tax-api") and " v" not in data["text"]:
                return JSONResponse({"text": "missing &lt;version&gt;\nUsage: `/release deploy`"})
            if data["text"] == "crash":
                return Response(status_code=500)
            return Response()
        if data.get("type") == "block_actions" and data["actions"][0]["action_id"] == ids.REJECT:
            # what the bot does: views.open with the trigger of the press
            self.slack.views.append({**REJECT_VIEW, "trigger_id": data["trigger_id"]})
        if data.get("type") == "view_submission":
            reason = data["view"]["state"]["values"][ids.REJECT_REASON_BLOCK]
            if not reason[ids.REJECT_REASON_INPUT]["value"]:
                return JSONResponse(
                    {
                        "response_action": "errors",
                        "errors": {ids.REJECT_REASON_BLOCK: "Say why."},
                    }
                )
        return Response()


@pytest.fixture
async def setup() -> AsyncIterator[tuple[httpx.AsyncClient, RecordingBot, WebConsole]]:
    slack = StandinState()
    slack.seed_example()
    sim = SimulatorState()
    config = parse_config(dev_config("http://sim.test"), "releasebot.yml")
    sim.seed_example(config.cloudflare.account_id)
    bot = RecordingBot(slack)
    console = WebConsole(
        slack,
        config,
        bot_url="http://bot.test",
        sim_url="http://sim.test",
        signing_secret=SECRET,
        transport=httpx.ASGITransport(app=bot.app),
        sim_transport=httpx.ASGITransport(app=create_simulator(sim)),
        stream_seconds=0.2,  # an event stream ends (with a "rotate" event) after 0.2 s
    )
    transport = httpx.ASGITransport(app=console.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as http:
        yield http, bot, console
    await console.aclose()


async def state(http: httpx.AsyncClient, user: str) -> dict[str, Any]:
    response = await http.get("/api/state", params={"user": user, "channel": CHANNEL})
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def text_of(snapshot: dict[str, Any]) -> str:
    return "".join(m["html"] for m in snapshot["messages"])


async def test_the_page_and_its_assets_never_carry_the_secret(setup: Any) -> None:
    http, _, _ = setup
    page = await http.get("/", params={"as": "alice"})
    assert page.status_code == 200
    assert '<option value="U0ALICE" data-role="an approver" selected>' in page.text
    assert "mallory · a member" in page.text
    for path in ("/static/console.js", "/static/console.css", "/api/cloudflare"):
        asset = await http.get(path)
        assert asset.status_code == 200 and SECRET not in asset.text
    assert SECRET not in page.text


async def test_a_usage_error_rides_on_the_ack_and_only_its_author_sees_it(setup: Any) -> None:
    http, bot, _ = setup
    response = await http.post(
        "/api/command",
        json={"user": "U0CAROL", "channel": CHANNEL, "text": "/release deploy tax-api"},
    )
    assert response.json() == {"ok": True, "status": 200}
    sent = bot.seen[-1]
    assert sent["command"] == "/release" and sent["text"] == "deploy tax-api"
    assert sent["user_id"] == "U0CAROL" and sent["user_name"] == "carol"
    assert sent["channel_id"] == CHANNEL
    carol = await state(http, "U0CAROL")
    assert "Only visible to you" in text_of(carol)
    assert "missing &lt;version&gt;<br>Usage: <code>/release deploy</code>" in text_of(carol)
    assert (await state(http, "U0ALICE"))["messages"] == []


async def test_unknown_commands_and_failures_are_explained(setup: Any) -> None:
    http, bot, _ = setup
    await http.post("/api/command", json={"user": "U0BOB", "channel": CHANNEL, "text": "/deploy"})
    assert bot.seen == []
    await http.post(
        "/api/command", json={"user": "U0BOB", "channel": CHANNEL, "text": "/release crash"}
    )
    shown = text_of(await state(http, "U0BOB"))
    assert "<code>/deploy</code> is not a valid command here" in shown
    assert "failed with the error “http_500”" in shown
    bad = await http.post("/api/command", json={"user": "U0BOB", "text": "no slash"})
    assert bad.status_code == 400
    nobody = await http.post("/api/command", json={"user": "U0EVE", "text": "/release help"})
    assert nobody.status_code == 400


async def test_a_button_is_looked_up_signed_and_sent_as_block_actions(setup: Any) -> None:
    http, bot, console = setup
    console.slack.messages.append(Message(CHANNEL, "1700000000.000001", BOT_USER_ID, "R-1", CARD))
    key = f"{CHANNEL}:1700000000.000001"

    press = {"user": "U0ALICE", "message": key, "block": "card-1", "action": ids.APPROVE}
    response = await http.post("/api/action", json=press)

    assert response.json() == {"ok": True, "status": 200, "error": None}
    payload = bot.seen[-1]
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0ALICE"
    assert payload["actions"][0]["value"] == "1:abc"  # from the message, not from the page
    assert payload["actions"][0]["block_id"] == "card-1"
    assert payload["container"]["message_ts"] == "1700000000.000001"
    assert payload["channel"]["id"] == CHANNEL
    gone = await http.post("/api/action", json={**press, "action": "release_nuke"})
    assert gone.status_code == 404 and len(bot.seen) == 1


async def test_the_modal_the_bot_opens_goes_to_the_presser_and_is_submitted(
    setup: Any,
) -> None:
    http, bot, console = setup
    console.slack.messages.append(Message(CHANNEL, "1700000000.000001", BOT_USER_ID, "R-1", CARD))
    press = {"user": "U0BOB", "message": f"{CHANNEL}:1700000000.000001", "block": "card-1"}
    await http.post("/api/action", json={**press, "action": ids.REJECT})

    modal = (await state(http, "U0BOB"))["modal"]
    assert modal["title"] == "Reject R-1" and "<textarea" in modal["html"]
    assert (await state(http, "U0ALICE"))["modal"] is None
    field = f"{ids.REJECT_REASON_BLOCK}/{ids.REJECT_REASON_INPUT}"

    empty = await http.post(
        "/api/view", json={"user": "U0BOB", "view_id": modal["id"], "values": {field: ""}}
    )
    assert empty.json() == {"ok": False, "errors": {ids.REJECT_REASON_BLOCK: "Say why."}}
    assert (await state(http, "U0BOB"))["modal"] is not None

    sent = await http.post(
        "/api/view",
        json={"user": "U0BOB", "view_id": modal["id"], "values": {field: "breaks 1099s"}},
    )
    assert sent.json() == {"ok": True}
    submission = bot.seen[-1]
    assert submission["type"] == "view_submission" and submission["user"]["id"] == "U0BOB"
    assert submission["view"]["callback_id"] == ids.REJECT_MODAL
    values = submission["view"]["state"]["values"][ids.REJECT_REASON_BLOCK]
    assert values[ids.REJECT_REASON_INPUT] == {"type": "plain_text_input", "value": "breaks 1099s"}
    assert (await state(http, "U0BOB"))["modal"] is None


async def test_cancelling_a_modal_closes_it_without_telling_the_bot(setup: Any) -> None:
    http, bot, console = setup
    console.slack.messages.append(Message(CHANNEL, "1700000000.000001", BOT_USER_ID, "R-1", CARD))
    press = {"user": "U0BOB", "message": f"{CHANNEL}:1700000000.000001", "block": "card-1"}
    await http.post("/api/action", json={**press, "action": ids.REJECT})
    modal = (await state(http, "U0BOB"))["modal"]
    closed = await http.post(
        "/api/view", json={"user": "U0BOB", "view_id": modal["id"], "close": True}
    )
    assert closed.json() == {"ok": True}
    assert (await state(http, "U0BOB"))["modal"] is None
    assert [p["type"] for p in bot.seen] == ["block_actions"]


async def test_direct_messages_are_seen_only_by_their_person(setup: Any) -> None:
    http, _, console = setup
    dm = Message("U0CAROL", "1700000000.000001", BOT_USER_ID, "R-1 succeeded :tada:")
    console.slack.messages.append(dm)

    carol = await http.get("/api/state", params={"user": "U0CAROL", "channel": "U0CAROL"})
    assert ["U0CAROL", "releasebot", "dm"] in carol.json()["channels"]
    assert "R-1 succeeded 🎉" in text_of(carol.json())
    assert carol.json()["title"] == "@releasebot"
    alice = await http.get("/api/state", params={"user": "U0ALICE", "channel": "U0CAROL"})
    assert alice.json()["messages"] == []
    assert ["U0CAROL", "releasebot", "dm"] not in alice.json()["channels"]


async def test_cloudflare_panel_reads_and_steers_the_simulator(setup: Any) -> None:
    http, _, _ = setup
    data = (await http.get("/api/cloudflare")).json()
    scripts = [w["script"] for w in data["workers"]]
    assert scripts == ["tax-api-staging", "tax-api", "tax-web-staging", "tax-web"]
    api = data["workers"][1]
    assert [(s["tag"], s["percentage"]) for s in api["split"]] == [("v1.4.1", 100.0)]
    new = next(v for v in api["versions"] if v["tag"] == "v1.4.2")

    made = await http.post(
        "/api/cloudflare/mode", json={"script": "tax-api", "version": new["id"], "mode": "bad"}
    )
    assert made.json()["version"]["error_rate"] == 0.25
    again = (await http.get("/api/cloudflare")).json()["workers"][1]
    row = next(v for v in again["versions"] if v["id"] == new["id"])
    assert row["error_rate"] == 0.25 and row["healthy"] is False
    errors = await http.post(
        "/api/cloudflare/mode", json={"script": "tax-api", "version": new["id"], "mode": "errors"}
    )
    assert errors.json()["version"]["healthy"] is True
    assert errors.json()["version"]["error_rate"] == 0.25
    unknown = await http.post("/api/cloudflare/mode", json={"script": "nope", "version": "x"})
    assert unknown.status_code == 404
    wrong = await http.post(
        "/api/cloudflare/mode", json={"script": "tax-api", "version": new["id"], "mode": "meh"}
    )
    assert wrong.status_code == 400


async def test_the_event_stream_sends_the_viewers_snapshot(setup: Any) -> None:
    http, _, _ = setup
    await http.post("/api/command", json={"user": "U0CAROL", "text": "/release deploy tax-api"})
    response = await http.get("/api/stream", params={"user": "U0CAROL"})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    snapshot = json.loads(events[0])
    assert snapshot["user"] == "U0CAROL" and snapshot["title"] == "#releases"
    assert "Usage" in snapshot["messages"][0]["html"]
    # the stream ends with a planned "rotate", so the page opens the next without a gap
    assert response.text.rstrip().endswith("event: rotate\ndata: {}")


def test_the_dev_app_serves_the_console_beside_the_bot(tmp_path: Path) -> None:
    with DevStack(tmp_path) as stack, httpx.Client(base_url=stack.url, timeout=10) as http:
        assert http.get("/console").headers["location"] == "/console/"
        page = http.get("/console/")
        assert page.status_code == 200 and "/console/static/console.js" in page.text
        assert http.get("/healthz").json() == {"status": "ok", "version": __version__}
        assert http.get("/readyz").json() == {"status": "ready"}
        assert http.post("/slack/events", content=b"command=/release").status_code == 401
        assert stack.rt is not None and stack.rt.bot_user_id == BOT_USER_ID  # lifespan ran
