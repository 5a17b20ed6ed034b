"""The log lines ``bot.logs.configure`` produces: one JSON object each, without terminal
colour codes or uvicorn's duplicated ``color_message``, without the libraries' INFO
bookkeeping (unless LOG_LEVEL=DEBUG), and without Bolt's warning about a token it is not
meant to use."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.logs import QUIET_LIBRARIES, configure

BOT_TOKEN = "xoxb-1-logs-test-token"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in (*QUIET_LIBRARIES, "releasebot")}
    yield
    root.handlers, root.level = handlers, level
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)
    structlog.reset_defaults()


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_uvicorn_lines_carry_no_colour_and_no_color_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("DEBUG", "json")
    coloured = "Uvicorn running on \x1b[1mhttp://0.0.0.0:3000\x1b[0m"
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on %s", "http://0.0.0.0:3000", extra={"color_message": coloured}
    )
    logging.getLogger("releasebot").warning("\x1b[31mred\x1b[0m alert")
    first, second = lines(capsys)
    assert first["event"] == "Uvicorn running on http://0.0.0.0:3000"
    assert first["logger"] == "uvicorn.error"
    assert "color_message" not in first
    assert second["event"] == "red alert"
    assert all("\x1b" not in json.dumps(line) for line in (first, second))


def test_library_info_is_dropped_at_info_but_their_warnings_and_ours_stay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("INFO", "json")
    for name in ("apscheduler.scheduler", "uvicorn.error", "slack_sdk.web", "alembic.runtime"):
        logging.getLogger(name).info("bookkeeping from %s", name)
    logging.getLogger("apscheduler.scheduler").warning("a job missed its run")
    logging.getLogger("releasebot").info("serving Slack over HTTP on port 3000")
    events = [line["event"] for line in lines(capsys)]
    assert events == ["a job missed its run", "serving Slack over HTTP on port 3000"]


def test_debug_shows_the_libraries_info_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure("DEBUG", "json")
    logging.getLogger("apscheduler.scheduler").info("Added job %s", "timers")
    assert [line["event"] for line in lines(capsys)] == ["Added job timers"]


async def test_building_the_bolt_app_as_the_bot_does_warns_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Bolt reads SLACK_BOT_TOKEN itself; `releasebot run` always has it set.
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    configure("INFO", "json", [BOT_TOKEN])
    bolt_logger = logging.getLogger("releasebot.bolt")
    AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN),
        signing_secret="s3cret-signing",
        process_before_response=True,
        logger=bolt_logger,
    )
    bolt_logger.warning("a different warning")
    assert [line["event"] for line in lines(capsys)] == ["a different warning"]


async def test_bolt_never_logs_a_refused_body_even_at_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bolt writes a whole refused body into its line at INFO; the bot's Bolt logger keeps the
    line and leaves the body out, at any level: for a refusal, a listener's error and a request
    no listener takes."""
    from slack_bolt.async_app import AsyncBoltRequest
    from slack_bolt.authorization import AuthorizeResult

    from bot.slack.app import bolt_logger

    configure("DEBUG", "json")
    app = AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN),
        signing_secret="s3cret-signing",
        process_before_response=True,
        logger=bolt_logger(),
    )

    @app.command("/boom")
    async def boom(ack: Any) -> None:
        raise RuntimeError("listener failed")

    marker = "SECRET-BODY-MARKER-" + "z" * 64
    forged = AsyncBoltRequest(
        body=f"command=/boom&text={marker}",
        headers={"x-slack-request-timestamp": ["1"], "x-slack-signature": ["v0=" + "0" * 64]},
    )
    assert (await app.async_dispatch(forged)).status == 401

    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T0", bot_token=BOT_TOKEN)

    app_unsigned = AsyncApp(
        request_verification_enabled=False,
        authorize=authorize,
        process_before_response=True,
        logger=bolt_logger(),
    )
    app_unsigned.command("/boom")(boom)
    failing = AsyncBoltRequest(body=f"command=/boom&text={marker}", headers={})
    assert (await app_unsigned.async_dispatch(failing)).status == 500
    unhandled = AsyncBoltRequest(body=f"command=/other&text={marker}", headers={})
    assert (await app_unsigned.async_dispatch(unhandled)).status == 404
    output = capsys.readouterr().err
    events = [json.loads(line)["event"] for line in output.splitlines() if line.strip()]
    assert "Invalid request signature detected (request body not logged)" in events
    assert "Failed to run listener function (error: listener failed)" in events
    assert "Unhandled request (request body not logged)" in events
    assert marker not in output
