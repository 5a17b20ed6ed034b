"""Shared fixtures: a real database per backend, the Cloudflare simulator, the bot over HTTP."""

import pytest

pytest_plugins = ["tests.fixtures.db", "tests.fixtures.cloudflare", "tests.fixtures.bot"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real Slack, Cloudflare or database setting can leak into a test."""
    import os

    for name in list(os.environ):
        if name.startswith(("SLACK_", "CLOUDFLARE_", "RELEASEBOT_CONFIG")) or name in (
            "DATABASE_URL",
            "PORT",
            "LOG_LEVEL",
            "LOG_FORMAT",
        ):
            monkeypatch.delenv(name, raising=False)
