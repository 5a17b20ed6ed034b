"""The bot's own metrics and readiness: one registry per runtime, releases and gates counted from
the audit records, Cloudflare and Slack calls counted and timed, the time to answer Slack, and
``/readyz`` saying 503 while the schema is behind the migrations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from prometheus_client import REGISTRY
from slack_sdk.errors import SlackApiError
from sqlalchemy.pool import NullPool

from bot.config import parse_config
from bot.dev import slack_payloads
from bot.engine.model import AuditEntry
from bot.engine.states import State
from bot.metrics import Metrics
from bot.runtime import Runtime
from bot.slack.client import make_client
from bot.web import MAX_BODY, create_web_app
from storage.db import alembic_config, sync_url, upgrade
from tests.fixtures.bot import (
    BOT_TOKEN,
    SIGNING_SECRET,
    BotHarness,
    config_data,
    make_settings,
)

pytest_plugins = ["tests.fixtures.db"]

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def _entry(action: str, seconds: float, release_id: int = 3, **changes: Any) -> AuditEntry:
    return AuditEntry(
        actor="releasebot",
        action=action,
        at=T0 + timedelta(seconds=seconds),
        release_id=release_id,
        release_key=f"R-{release_id}",
        service="tax-api",
        environment="production",
        **changes,
    )


def test_each_runtime_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics(process=False)
    first.observe_audit([_entry("gate.passed", 0)])
    assert value(first, "releasebot_gate_verdicts_total", verdict="pass", environment="production")
    assert not value(
        second, "releasebot_gate_verdicts_total", verdict="pass", environment="production"
    )
    assert REGISTRY.get_sample_value("releasebot_gate_verdicts_total", {}) is None
    text = first.exposition().decode()
    assert "releasebot_gate_verdicts_total" in text and "process_cpu_seconds_total" in text
    assert "process_cpu_seconds_total" not in second.exposition().decode()


def test_releases_steps_and_gates_are_counted_from_the_audit_records() -> None:
    metrics = Metrics(process=False)
    metrics.observe_audit(
        [
            _entry("release.started", 0, before="approved", after="deploying"),
            _entry("release.step_deployed", 2, before="deploying", after="verifying"),
            _entry("gate.passed", 62),
            _entry("release.next_step", 62, before="verifying", after="deploying"),
            _entry("release.step_deployed", 65, before="deploying", after="verifying"),
            _entry("gate.failed", 365),
            _entry("release.rolled_back", 366, before="verifying", after="rolled_back"),
            _entry(
                "release.rejected", 400, release_id=4, before="awaiting_approval", after="cancelled"
            ),
            _entry("drift.unauthorized_change", 500, release_id=None),  # type: ignore[arg-type]
        ]
    )
    env = {"environment": "production"}
    assert value(metrics, "releasebot_releases_total", outcome="rolled_back", **env) == 1
    assert value(metrics, "releasebot_releases_total", outcome="cancelled", **env) == 1
    assert value(metrics, "releasebot_gate_verdicts_total", verdict="pass", **env) == 1
    assert value(metrics, "releasebot_gate_verdicts_total", verdict="fail", **env) == 1
    assert value(metrics, "releasebot_step_duration_seconds_count", **env) == 2
    assert value(metrics, "releasebot_step_duration_seconds_sum", **env) == 5
    assert value(metrics, "releasebot_gate_duration_seconds_count", **env) == 2
    assert value(metrics, "releasebot_gate_duration_seconds_sum", **env) == 360
    assert value(metrics, "releasebot_drift_detected_total", service="tax-api", **env) == 1
    assert metrics._step_started == {} and metrics._step_deployed == {}


async def test_cloudflare_calls_are_counted_by_endpoint_and_status(
    cf_client_factory: Callable[..., Any], cf_server: Any
) -> None:
    metrics = Metrics(process=False)
    client = cf_client_factory(metrics=metrics)
    cf_server.state.inject("GET", r"/versions$", 503, count=1)

    await client.list_versions("tax-api")

    endpoint = "/accounts/{account_id}/workers/scripts/{script_name}/versions"
    labels = {"method": "GET", "endpoint": endpoint}
    assert value(metrics, "releasebot_cloudflare_requests_total", status="503", **labels) == 1
    assert value(metrics, "releasebot_cloudflare_requests_total", status="200", **labels) == 1
    assert value(metrics, "releasebot_cloudflare_request_duration_seconds_count", **labels) == 2


async def test_slack_calls_are_counted_by_method_and_status(slack_standin: Any) -> None:
    server, _ = slack_standin
    metrics = Metrics(process=False)
    client = make_client(BOT_TOKEN, f"{server.url}/api/", metrics=metrics)

    await client.chat_postMessage(channel="C0RELEASES", text="hello")
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="", text="nowhere")

    ok = {"method": "chat.postMessage", "status": "ok"}
    refused = {"method": "chat.postMessage", "status": "channel_not_found"}
    assert value(metrics, "releasebot_slack_requests_total", **ok) == 1
    assert value(metrics, "releasebot_slack_requests_total", **refused) == 1
    assert (
        value(metrics, "releasebot_slack_request_duration_seconds_count", method="chat.postMessage")
        == 2
    )


async def test_the_time_to_answer_slack_is_measured(sqlite_url: str) -> None:
    rt = _runtime(sqlite_url)
    metrics = rt.metrics
    challenge = '{"type": "url_verification", "challenge": "c-1", "token": "deprecated"}'
    transport = httpx.ASGITransport(app=create_web_app(rt, manage_runtime=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
            for _ in range(2):
                signed = slack_payloads.signed_headers(SIGNING_SECRET, challenge)
                signed["content-type"] = "application/json"
                answer = await http.post("/slack/events", content=challenge, headers=signed)
                assert (answer.status_code, answer.json()) == (200, {"challenge": "c-1"})
            assert (await http.post("/slack/events", content=challenge)).status_code == 401
            too_big = "x" * (MAX_BODY + 1)
            signed = slack_payloads.signed_headers(SIGNING_SECRET, too_big)
            answer = await http.post("/slack/events", content=too_big, headers=signed)
            assert answer.status_code == 413
            assert (await http.get("/healthz")).status_code == 200
    finally:
        await rt.close()
    assert value(metrics, "releasebot_slack_ack_seconds_count", status="200") == 2
    assert value(metrics, "releasebot_slack_ack_seconds_bucket", status="200", le="3.0") == 2
    assert value(metrics, "releasebot_slack_ack_seconds_count", status="401") == 1
    assert value(metrics, "releasebot_slack_ack_seconds_count", status="413") == 1


def _runtime(db_url: str) -> Runtime:
    settings = make_settings(db_url, "http://127.0.0.1:1", "http://127.0.0.1:1/client/v4", "t")
    return Runtime(settings, parse_config(config_data()))


async def _readyz(rt: Runtime) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_web_app(rt, manage_runtime=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
        return await http.get("/readyz")


def _step_back_one_migration(url: str) -> None:
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.downgrade(config, "-1")
    finally:
        engine.dispose()


async def test_readyz_is_503_while_migrations_are_behind(empty_db_url: str) -> None:
    rt = _runtime(empty_db_url)
    try:
        empty = await _readyz(rt)
        assert (empty.status_code, empty.json()) == (503, {"status": "migrations pending"})
        upgrade(empty_db_url)
        assert (await _readyz(rt)).status_code == 200
        _step_back_one_migration(empty_db_url)
        behind = await _readyz(rt)
        assert (behind.status_code, behind.json()) == (503, {"status": "migrations pending"})
        upgrade(empty_db_url)
        assert (await _readyz(rt)).json() == {"status": "ready"}
    finally:
        await rt.close()


async def test_readyz_is_503_without_a_database() -> None:
    rt = _runtime("postgresql+psycopg://releasebot@127.0.0.1:1/releasebot")
    try:
        assert (await _readyz(rt)).status_code == 503
    finally:
        await rt.close()


def test_a_real_release_is_measured(bot: BotHarness) -> None:
    """The bot's adapters measured as the runtime wires them, through a staging deploy."""
    metrics = bot.rt.metrics
    bot.command("deploy tax-api v1.4.2 to staging")
    bot.wait_for(lambda: bot.release(1) and bot.release(1).state is State.SUCCEEDED, what="R-1")
    bot.idle()

    staging = {"environment": "staging"}
    assert value(metrics, "releasebot_releases_total", outcome="succeeded", **staging) == 1
    assert value(metrics, "releasebot_gate_verdicts_total", verdict="pass", **staging) == 1
    assert value(metrics, "releasebot_step_duration_seconds_count", **staging) == 1
    deployments = "/accounts/{account_id}/workers/scripts/{script_name}/deployments"
    posted = {"method": "POST", "endpoint": deployments, "status": "200"}
    assert value(metrics, "releasebot_cloudflare_requests_total", **posted) == 1
    assert value(metrics, "releasebot_slack_requests_total", method="chat.update", status="ok")


async def test_log_lines_carry_the_release_they_are_about() -> None:
    import asyncio
    import io
    import json
    import logging

    import structlog

    from bot.engine.model import Timer
    from bot.logcontext import about_release, bound
    from bot.logs import configure

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure("INFO", "json")
    sink = io.StringIO()
    root.handlers[0].setStream(sink)  # type: ignore[attr-defined]
    log = logging.getLogger("releasebot.test")

    class Engine:
        @about_release
        async def drive(self, release_id: int) -> None:
            await asyncio.sleep(0)
            log.info("driving")
            structlog.get_logger("releasebot.test").info("structlog too")

    async def work(key: str) -> None:
        with bound(release_id=key):
            for _ in range(3):
                await asyncio.sleep(0)
                log.info("step of %s", key)

    try:
        await asyncio.gather(work("R-1"), work("R-2"), Engine().drive(7))
        await about_release(lambda self, t: asyncio.sleep(0))(None, Timer(1, "advance", T0, 9))
        log.info("about nothing")
    finally:
        root.handlers, _ = saved[0], root.setLevel(saved[1])
        structlog.reset_defaults()
    lines = [json.loads(line) for line in sink.getvalue().splitlines()]
    for line in lines:
        if line["event"].startswith("step of "):
            assert line["release_id"] == line["event"].removeprefix("step of ")
    assert [
        line["release_id"] for line in lines if line["event"] in ("driving", "structlog too")
    ] == [
        "R-7",
        "R-7",
    ]
    assert "release_id" not in lines[-1]
