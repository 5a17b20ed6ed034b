"""Structured logging (structlog over the stdlib), with known secrets scrubbed from every line.

Configured once by the process entry point (``configure``), never at import time.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from bot import logcontext
from bot.slack.text import set_secrets

REDACTED = "[redacted]"

# Libraries whose INFO lines are their own bookkeeping (uvicorn's start banner, APScheduler's
# "job added", slack_sdk's retry notes, Alembic's migration steps...): at WARNING unless
# LOG_LEVEL is DEBUG. The bot's own lines are under ``releasebot``.
QUIET_LIBRARIES = (
    "aiohttp",
    "aiosqlite",
    "alembic",
    "apscheduler",
    "asyncio",
    "httpcore",
    "httpx",
    "psycopg",
    "slack_bolt",
    "slack_sdk",
    "sqlalchemy",
    "uvicorn",
)

# Terminal colour codes some libraries put in their messages.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# Bolt reads SLACK_BOT_TOKEN from the environment on its own, and warns that the client it
# is given wins over it; that client is built from the very same token.
_EXPECTED_WARNINGS = ("As you gave `client` as well, `token` will be unused.",)


class SecretScrubber:
    """Replaces each known secret value (and common token shapes) wherever it appears."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
        return {k: self._value(v) for k, v in event.items()}

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(v) for v in value]
        return value


class _ScrubFilter(logging.Filter):
    """For records that reach stdlib handlers without going through structlog."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            return True  # a structlog event: the formatter's chain scrubs it (and needs the dict)
        record.msg = self.scrubber.scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.scrubber.scrub(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        return True


def drop_terminal_formatting(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """No colour in the lines: uvicorn's ``color_message`` copy of each message goes (the
    plain ``event`` says the same), and ANSI codes are taken out of every text value."""
    event.pop("color_message", None)
    for key, value in event.items():
        if isinstance(value, str) and "\x1b" in value:
            event[key] = _ANSI.sub("", value)
    return event


class _ExpectedWarningFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or isinstance(record.msg, dict):
            return True
        return record.getMessage() not in _EXPECTED_WARNINGS


def merge_logcontext(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Adds what :mod:`bot.logcontext` has bound (e.g. the release being worked on)."""
    for key, value in logcontext.current().items():
        event.setdefault(key, value)
    return event


def configure(level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    secrets = tuple(secrets)
    # Text shown to people in Slack is scrubbed of the same values as the log lines.
    set_secrets(secrets)
    scrubber = SecretScrubber(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        merge_logcontext,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        drop_terminal_formatting,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrubber,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_ExpectedWarningFilter())
    handler.addFilter(_ScrubFilter(scrubber))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for library in QUIET_LIBRARIES:
        logger = logging.getLogger(library)
        logger.setLevel(logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING)
        if library == "uvicorn":
            # uvicorn's loggers get their own handlers (and stop propagating) when a server
            # is started with uvicorn's default log_config; their lines come here instead,
            # through the root's handler, whatever started before.
            for child in ("uvicorn", "uvicorn.error", "uvicorn.access"):
                child_logger = logging.getLogger(child)
                child_logger.handlers = []
                child_logger.propagate = True
                if child != "uvicorn":
                    child_logger.setLevel(logging.NOTSET)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
