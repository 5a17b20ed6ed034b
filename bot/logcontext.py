"""What the work in progress is about (a release), for every log line written meanwhile.

Plain ``contextvars``, so the engine can say which release it is working on without knowing
how logs are written; :mod:`bot.logs` adds these values to each line::

    with bound(release_id="R-42"):
        await drive(...)          # every line logged in here carries release_id=R-42

    @about_release                # the same for a method's first argument (release, id, timer)
    async def drive(self, release_id): ...

Values are per task: concurrent releases never see each other's.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_values: ContextVar[Mapping[str, Any]] = ContextVar("releasebot_log_context", default=_EMPTY)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Add ``values`` (None ones are skipped) to the log context until the block ends."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        yield
        return
    token = _values.set(MappingProxyType({**_values.get(), **given}))
    try:
        yield
    finally:
        _values.reset(token)


def current() -> Mapping[str, Any]:
    """The values bound now (read-only)."""
    return _values.get()


def release_key(subject: Any) -> str | None:
    """``R-42`` for a release (``.key`` once stored), a release id, or a timer of a release."""
    if isinstance(subject, bool):
        return None
    if isinstance(subject, int):
        return f"R-{subject}"
    if getattr(subject, "id", None) is not None and isinstance(getattr(subject, "key", None), str):
        return str(subject.key)
    release_id = getattr(subject, "release_id", None)
    return f"R-{release_id}" if isinstance(release_id, int) else None


def about_release(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """For ``async def method(self, release_or_id_or_timer, ...)``: every line logged while it
    runs carries the release id."""

    @functools.wraps(method)
    async def wrapper(self: Any, subject: Any, *args: Any, **kwargs: Any) -> T:
        with bound(release_id=release_key(subject)):
            return await method(self, subject, *args, **kwargs)

    return wrapper
