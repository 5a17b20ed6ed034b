"""Structured logging (structlog over the stdlib), with known secrets scrubbed from every line.

Configured once by the process entry point (``configure``), never at import time.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from bot import logcontext

REDACTED = "[redacted]"


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


def merge_logcontext(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Adds what :mod:`bot.logcontext` has bound (e.g. the release being worked on)."""
    for key, value in logcontext.current().items():
        event.setdefault(key, value)
    return event


def configure(level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    scrubber = SecretScrubber(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        merge_logcontext,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
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
    handler.addFilter(_ScrubFilter(scrubber))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiosqlite", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
