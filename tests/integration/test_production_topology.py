"""``deploy/compose.yaml``'s topology without containers: two ``releasebot run`` processes
started together on one fresh PostgreSQL database, configured as the compose file configures
them (JSON logs, ``/metrics`` on ``METRICS_PORT``). Both migrate and become ready, either
takes Slack's requests, ``/metrics`` is served apart from Slack's port and matches the
README, a normal start logs no warning and no colour codes, and SIGTERM stops one replica
cleanly while the other serves on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot import __version__
from bot.dev.slack_standin import StandinState
from bot.engine.states import State
from tests.fixtures.bot import config_data
from tests.fixtures.processes import BotProcess, World
from tests.fixtures.servers import ServerThread, free_port
from tests.readme_facts import documented_metrics, served_metrics

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.parametrize("empty_db_url", ["postgres"], indirect=True),
]

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


@pytest.fixture
def world(
    empty_db_url: str,
    cf_server: Any,
    slack_standin: tuple[ServerThread, StandinState],
    tmp_path: Path,
) -> Any:
    slack_server, slack_state = slack_standin
    made = World(empty_db_url, slack_server.url, slack_state, cf_server, config_data(), tmp_path)
    try:
        yield made
    finally:
        made.close()


def compose_environment() -> dict[str, str]:
    """What compose.yaml sets for a bot beside its env file (the config path aside)."""
    compose = yaml.safe_load(COMPOSE.read_text())
    env = dict(compose["services"]["bot-a"]["environment"])
    env.pop("RELEASEBOT_CONFIG")
    return {k: str(v) for k, v in env.items()}


def replica(world: World, name: str) -> tuple[BotProcess, int]:
    """A bot with the compose file's settings, on ports of its own (one machine here)."""
    port, metrics_port = free_port(), free_port()
    env = {
        **world.base_env,
        **compose_environment(),
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
    }
    bot = BotProcess(name, env, port, world.folder / f"{name}.log")
    world.bots.append(bot)
    return bot, metrics_port


def log_records(bot: BotProcess) -> list[dict[str, Any]]:
    records = []
    for line in bot.log_text().splitlines():
        if not line.strip() or line.startswith("===== "):  # the fixture's own start markers
            continue
        records.append(json.loads(line))  # every line the bot writes is one JSON object
    return records


def test_two_replicas_on_one_fresh_postgresql_database(world: World) -> None:
    (a, a_metrics), (b, b_metrics) = replica(world, "a"), replica(world, "b")
    a.start()
    b.start()  # together: both find an empty database and migrate it, taking turns
    a.wait_ready()
    b.wait_ready()

    for bot, metrics_port in ((a, a_metrics), (b, b_metrics)):
        assert bot.http.get("/readyz").json() == {"status": "ready"}
        assert bot.http.get("/healthz").json() == {"status": "ok", "version": __version__}
        assert bot.http.get("/metrics").status_code == 404, "metrics are off Slack's port"
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert scraped.status_code == 200
        assert served_metrics(scraped.text) == documented_metrics()
        assert f'releasebot_build_info{{version="{__version__}"}} 1.0' in scraped.text

    # Slack's requests to either replica; the release is driven to its end once.
    a.command("deploy tax-api v1.4.2 to staging")
    world.wait_state(1, State.SUCCEEDED)
    b.command("deploy tax-web v1.4.2 to staging")
    world.wait_state(2, State.SUCCEEDED)
    assert [p["script"] for p in world.cf.deployment_posts] == [
        "tax-api-staging",
        "tax-web-staging",
    ]

    def total(sample: str) -> float:
        found = 0.0
        for port in (a_metrics, b_metrics):
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            for line in text.splitlines():
                if line.startswith(sample):
                    found += float(line.rsplit(" ", 1)[1])
        return found

    succeeded = 'releasebot_releases_total{environment="staging",outcome="succeeded"}'
    assert total(succeeded) == 2
    # the releases ran on durable timers, each claimed by one replica and timed there
    assert total("releasebot_timer_lateness_seconds_count") >= 2
    # the audit channel's posts are all out once Slack has taken them
    world.wait_for(lambda: total('releasebot_outbox_backlog{outbox="slack"}') == 0, what="posts")

    # A normal start and these releases: JSON lines only, nothing at WARNING or above, no
    # colour codes, no duplicated message fields.
    for bot in (a, b):
        records = log_records(bot)
        assert any(r["event"].startswith("serving Slack over HTTP") for r in records)
        assert [r for r in records if r["level"] not in ("debug", "info")] == []
        assert all("color_message" not in r for r in records)
        assert "\x1b" not in bot.log_text()

    # SIGTERM: a finishes and exits 0; b carries on.
    a.stop()
    assert a.proc is not None and a.proc.returncode == 0, a.log_tail()
    assert b.http.get("/readyz").status_code == 200
    b.command("deploy tax-api v1.4.0 to staging")
    world.wait_state(3, State.SUCCEEDED)
