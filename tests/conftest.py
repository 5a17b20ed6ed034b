"""Shared fixtures: a real database per backend, the Cloudflare simulator, the bot over HTTP."""

import fcntl
import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.fixtures.db", "tests.fixtures.cloudflare", "tests.fixtures.bot"]


@pytest.fixture(autouse=True)
def _machine_share(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Under pytest-xdist, a test marked ``exclusive`` (it restarts the PostgreSQL server every
    test shares) runs while no other worker runs a test: every test holds a shared lock on one
    file for the run, an exclusive test holds it alone. Without xdist this takes no lock."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    # every worker's base temp folder is a child of the run's own folder
    path = tmp_path_factory.getbasetemp().parent / "machine.lock"
    mode = fcntl.LOCK_EX if request.node.get_closest_marker("exclusive") else fcntl.LOCK_SH
    with open(path, "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real Slack, Cloudflare or database setting can leak into a test."""
    import os

    for name in list(os.environ):
        if name.startswith(("SLACK_", "CLOUDFLARE_", "RELEASEBOT_CONFIG")) or name in (
            "DATABASE_URL",
            "HOST",
            "PORT",
            "LOG_LEVEL",
            "LOG_FORMAT",
        ):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A test that configures logging (as ``run`` does) leaves the process as it found it:
    the libraries' loggers back at their levels and handlers, the root's handlers back, and
    no secrets left for Slack text to scrub. Otherwise a DEBUG level left on SQLAlchemy or
    psycopg fills pytest's log capture for every later test."""
    import logging

    import structlog

    from bot.logs import QUIET_LIBRARIES
    from bot.slack.text import set_secrets

    names = (*QUIET_LIBRARIES, "releasebot", "uvicorn.error", "uvicorn.access")
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg, lg.level, lg.handlers[:], lg.propagate) for lg in loggers]
    root = logging.getLogger()
    root_handlers, root_level = root.handlers[:], root.level
    yield
    for lg, level, handlers, propagate in saved:
        lg.setLevel(level)
        lg.handlers = handlers
        lg.propagate = propagate
    root.handlers, root.level = root_handlers, root_level
    set_secrets(())
    structlog.reset_defaults()
