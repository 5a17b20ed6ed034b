"""``health_digest`` cron expressions go through the scheduler's own parser, so whatever
``config check`` accepts, ``releasebot run`` can schedule (bot.scheduler uses the same
``CronTrigger.from_crontab``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config import ConfigError, parse_config
from bot.scheduler import Scheduler
from tests.fixtures.bot import config_data


def with_digest(cron: str) -> dict[str, Any]:
    data = config_data()
    data["policies"]["staging"]["health_digest"] = cron
    return data


@pytest.mark.parametrize(
    "cron", ["0 9 * * 1-5", "*/15 * * * *", "30 7 1 * *", "0 9 * * mon-fri", "0 0 * jan,jul *"]
)
def test_what_passes_can_be_scheduled(cron: str) -> None:
    config = parse_config(with_digest(cron), "releasebot.yml")
    assert config.policies["staging"].health_digest == cron
    after = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert Scheduler.next_fire(cron, after) > after


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("99 * * * *", "higher than the maximum value (59)"),
        ("0 25 * * *", "higher than the maximum value (23)"),
        ("0 9 32 * *", "higher than the maximum value (31)"),
        ("0 9 * * 8", "higher than the maximum value (6)"),
        ("0 9 * * funday", "funday"),
        ("0 9 * *", "is not a 5-field cron expression"),
    ],
)
def test_what_the_scheduler_would_refuse_is_refused_with_its_key_path(cron: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_digest(cron), "releasebot.yml")
    (problem,) = caught.value.problems
    assert problem.startswith("releasebot.yml: policies.staging.health_digest: "), problem
    assert says in problem, problem
