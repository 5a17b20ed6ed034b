"""The exception tree of the ``/release`` grammar.

The parser never prints or exits: everything it rejects becomes one of these, and the chat
layer turns ``str(error)`` into an ephemeral reply.

::

    CommandError                      base of every error this package raises on purpose
    └── UsageError                    the text does not fit the grammar (message, token, usage)
        └── UnknownSubcommand         the first word (or a help topic) is no subcommand;
                                      carries the closest names as ``suggestions``

``str()`` of a ``UsageError`` is plain text (with Slack-style backticks around commands):
the Slack layer escapes ``&``, ``<`` and ``>`` before posting it as mrkdwn.

>>> err = UsageError("unknown option '--force'", token="--force",
...                  usage="/release cancel <release-id>", subcommand="cancel")
>>> print(err)
unknown option '--force'
Usage: `/release cancel <release-id>`
See `/release help cancel` for details.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable


class CommandError(Exception):
    """Base of every error raised on purpose by :mod:`commands`; ``str()`` is fit to show."""


class UsageError(CommandError):
    """The command text does not fit the grammar.

    Attributes:
        message: what was wrong, naming the offending token where there is one.
        token: the offending token as typed, or None (e.g. for a missing argument).
        usage: the usage line(s) of the subcommand, each starting with the command name;
            None when the error is not tied to a command (e.g. ``parse_when`` on its own).
        subcommand: the subcommand the usage belongs to, or None.
        command_name: the slash command as configured (``/release`` by default).
    """

    def __init__(
        self,
        message: str,
        *,
        token: str | None = None,
        usage: str | None = None,
        subcommand: str | None = None,
        command_name: str = "/release",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.token = token
        self.usage = usage
        self.subcommand = subcommand
        self.command_name = command_name

    def __str__(self) -> str:
        lines = [self.message]
        if self.usage:
            usage_lines = self.usage.splitlines()
            lines.append(f"Usage: `{usage_lines[0]}`")
            lines.extend(f"       `{line}`" for line in usage_lines[1:])
        if self.subcommand:
            lines.append(f"See `{self.command_name} help {self.subcommand}` for details.")
        elif self.usage:
            lines.append(f"Type `{self.command_name} help` for every subcommand.")
        return "\n".join(lines)


class UnknownSubcommand(UsageError):
    """The subcommand (or help topic) is not in the grammar.

    ``suggestions`` holds the closest known names, best first (possibly empty).
    """

    def __init__(
        self,
        message: str,
        *,
        token: str | None = None,
        usage: str | None = None,
        suggestions: tuple[str, ...] = (),
        command_name: str = "/release",
    ) -> None:
        super().__init__(message, token=token, usage=usage, command_name=command_name)
        self.suggestions = suggestions


def quoted(token: str, limit: int = 40) -> str:
    """``token`` in single quotes for a message, cut short so a long paste stays readable.

    >>> quoted("prod")
    "'prod'"
    """
    if len(token) > limit:
        token = token[: limit - 1] + "…"
    return f"'{token}'"


def did_you_mean(names: tuple[str, ...]) -> str:
    """A message tail suggesting ``names``, or "" when there are none."""
    if not names:
        return ""
    return "; did you mean " + " or ".join(f"'{name}'" for name in names) + "?"


def closest(word: str, names: Iterable[str], limit: int = 3) -> tuple[str, ...]:
    """The known names that look most like ``word`` (a typo), best first.

    >>> closest("deplyo", ["deploy", "plan", "status"])
    ('deploy',)
    """
    return _closest(word.lower(), tuple(names), limit)


@functools.lru_cache(maxsize=1024)
def _closest(word: str, names: tuple[str, ...], limit: int) -> tuple[str, ...]:
    # Typos repeat (and difflib is the slowest part of answering one), so answers are kept.
    return tuple(difflib.get_close_matches(word, list(names), n=limit, cutoff=0.6))
