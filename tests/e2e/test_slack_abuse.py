"""Hostile or broken requests to /slack/events get the right status and change nothing."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from urllib.parse import quote

from bot.dev import slack_payloads
from bot.engine.states import State
from tests.fixtures.bot import RELEASES, SIGNING_SECRET, BotHarness

DEPLOY = slack_payloads.slash_command("deploy tax-api v1.4.2 to staging", "U0CAROL", RELEASES)


def _nothing_happened(bot: BotHarness) -> None:
    bot.idle()
    assert bot.cf.deployment_posts == []
    assert bot.cards() == []
    assert bot.release(1) is None


def test_forged_missing_and_replayed_signatures_get_401(bot: BotHarness) -> None:
    signed = slack_payloads.signed_headers(SIGNING_SECRET, DEPLOY)
    forged = dict(signed, **{"x-slack-signature": "v0=" + "0" * 64})
    no_signature = {k: v for k, v in signed.items() if k != "x-slack-signature"}
    no_timestamp = {k: v for k, v in signed.items() if k != "x-slack-request-timestamp"}
    replayed = slack_payloads.signed_headers(SIGNING_SECRET, DEPLOY, timestamp=1_700_000_000)
    for headers in (forged, no_signature, no_timestamp, replayed):
        assert bot.post(DEPLOY, headers).status_code == 401
    tampered = DEPLOY.replace("staging", "production")
    assert bot.post(tampered, signed).status_code == 401
    _nothing_happened(bot)


def test_a_megabyte_body_is_refused_unread(bot: BotHarness) -> None:
    body = DEPLOY + "&padding=" + "a" * 1_000_001
    response = bot.post(body, slack_payloads.signed_headers(SIGNING_SECRET, body))
    assert response.status_code == 413
    _nothing_happened(bot)


def test_malformed_payload_json_gets_400(bot: BotHarness) -> None:
    body = "payload=" + quote('{"type": "block_actions", "actions": [')
    response = bot.post(body, slack_payloads.signed_headers(SIGNING_SECRET, body))
    assert response.status_code == 400
    _nothing_happened(bot)


def test_unknown_action_gets_200_and_a_private_note(bot: BotHarness) -> None:
    body = slack_payloads.block_action("release_launch_rockets", "1:abc", "U0BOB", RELEASES, "1.1")
    assert bot.post(body).status_code == 200
    note = bot.wait_for(lambda: bot.ephemerals("U0BOB"), what="a private note")[-1]
    assert "not one this bot knows" in note.text
    _nothing_happened(bot)


def test_a_button_for_a_release_that_does_not_exist(bot: BotHarness) -> None:
    body = slack_payloads.block_action(
        "release_approve", "999:abcdef12", "U0ALICE", RELEASES, "1.1"
    )
    assert bot.post(body).status_code == 200
    note = bot.wait_for(lambda: bot.ephemerals("U0ALICE"), what="a private note")[-1]
    assert "no release R-999" in note.text
    garbage = slack_payloads.block_action(
        "release_approve", "not-a-value", "U0ALICE", RELEASES, "1"
    )
    assert bot.post(garbage).status_code == 200
    bot.wait_for(lambda: len(bot.ephemerals("U0ALICE")) == 2, what="second note")
    _nothing_happened(bot)


def test_a_command_still_works_after_all_that(bot: BotHarness) -> None:
    bot.post("payload=%7B", slack_payloads.signed_headers(SIGNING_SECRET, "payload=%7B"))
    bot.command("deploy tax-api v1.4.2 to staging")
    assert bot.wait_for(lambda: (r := bot.release(1)) and r.state.is_terminal and r).state is (
        State.SUCCEEDED
    )


def _deep(depth: int) -> str:
    return "payload=" + quote("[" * depth + "]" * depth)


def test_deep_json_is_refused_400_when_signed_and_401_when_not(bot: BotHarness) -> None:
    deep = _deep(1000)
    assert bot.post(deep).status_code == 400
    forged = dict(
        slack_payloads.signed_headers(SIGNING_SECRET, deep),
        **{"x-slack-signature": "v0=" + "1" * 64},
    )
    assert bot.post(deep, forged).status_code == 401
    events = '{"type": "event_callback", "event": ' * 1000 + "{}" + "}" * 1000
    headers = dict(
        slack_payloads.signed_headers(SIGNING_SECRET, events),
        **{"content-type": "application/json"},
    )
    assert bot.post(events, headers).status_code == 400
    _nothing_happened(bot)


def test_signed_bodies_that_are_not_slack_payloads_get_400(bot: BotHarness) -> None:
    for body in ("payload=%5B1%5D", "payload=1", "payload=%22x%22", "payload=null"):
        assert bot.post(body).status_code == 400, body
    not_utf8 = b"command=%2Frelease&text=\xff\xfe"
    ts = str(int(time.time()))
    mac = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:".encode() + not_utf8, hashlib.sha256)
    headers = {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": "v0=" + mac.hexdigest(),
        "content-type": "application/x-www-form-urlencoded",
    }
    response = bot.http.post("/slack/events", content=not_utf8, headers=headers)
    assert response.status_code == 400
    _nothing_happened(bot)


def test_malformed_signature_headers_get_401_before_the_body_is_read(bot: BotHarness) -> None:
    signed = slack_payloads.signed_headers(SIGNING_SECRET, DEPLOY)
    for timestamp in ("abc", "", "1e9", "-1", "+1764158400", "9" * 40, "1764158400.5"):
        headers = dict(signed, **{"x-slack-request-timestamp": timestamp})
        assert bot.post(DEPLOY, headers).status_code == 401, timestamp
    for signature in ("v0=xyz", "v1=" + "0" * 64, "v0=" + "A" * 64, "", "v0=" + "0" * 65):
        headers = dict(signed, **{"x-slack-signature": signature})
        assert bot.post(DEPLOY, headers).status_code == 401, signature
    # The same header twice is not Slack's either, even when one of them is right.
    twice = [(k, v) for k, v in signed.items()] + [("x-slack-signature", "v0=" + "0" * 64)]
    assert bot.http.post("/slack/events", content=DEPLOY.encode(), headers=twice).status_code == 401
    # Refused on its headers: the body (announced as 500 KB, never sent) is not waited for.
    started = time.monotonic()
    status = _raw_post(bot, dict(signed, **{"x-slack-request-timestamp": "abc"}), b"", 500_000)
    assert status == 401
    assert time.monotonic() - started < 1
    _nothing_happened(bot)


def test_a_malformed_content_length_gets_400(bot: BotHarness) -> None:
    signed = slack_payloads.signed_headers(SIGNING_SECRET, DEPLOY)
    body = DEPLOY.encode()
    assert _raw_post(bot, signed, body, length="12abc") == 400
    _nothing_happened(bot)


def test_a_body_slower_than_slacks_3_seconds_gets_408(bot: BotHarness) -> None:
    signed = slack_payloads.signed_headers(SIGNING_SECRET, DEPLOY)
    body = DEPLOY.encode()
    started = time.monotonic()
    status = _raw_post(bot, signed, body[:10], len(body), dribble=body[10:])
    assert status == 408
    assert 2.5 < time.monotonic() - started < 6
    _nothing_happened(bot)


def _raw_post(
    bot: BotHarness,
    headers: dict[str, str],
    body: bytes,
    announced: int | None = None,
    *,
    length: str | None = None,
    dribble: bytes = b"",
) -> int:
    """POST over a bare socket: ``body`` at once, then ``dribble`` a byte every 0.5 s (until
    the bot answers), with ``Content-Length`` set to ``length`` or ``announced``."""
    sock = socket.create_connection(("127.0.0.1", bot.server.port), timeout=10)
    try:
        lines = ["POST /slack/events HTTP/1.1", "host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"content-length: {length or announced or len(body)}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        sock.settimeout(0.5)
        answer = b""
        for byte in dribble:
            try:
                answer = sock.recv(4096)
            except TimeoutError:
                sock.sendall(bytes([byte]))
                continue
            break
        sock.settimeout(10)
        answer = answer or sock.recv(4096)
        return int(answer.split(b" ", 2)[1])
    finally:
        sock.close()


def test_slacks_unsigned_ssl_check_gets_200_and_nothing_else_unsigned_does(
    bot: BotHarness,
) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    check = "ssl_check=1&token=deprecated-verification-token"
    answer = bot.post(check, form)
    assert (answer.status_code, answer.text) == (200, "")
    for body in ("ssl_check=0&token=x", "ssl_check=1&" + "a=b&" * 60, "command=/release"):
        assert bot.post(body, form).status_code == 401, body
    # Without a length the body is not read at all.
    chunks = iter([check.encode()])
    response = bot.http.post("/slack/events", content=chunks, headers=form)
    assert response.status_code == 401
    _nothing_happened(bot)
