"""The ``/release`` grammar: text -> typed command, or a usage error; help from the grammar.

Pure Python: no Slack, no clock, no I/O. The chat layer calls :func:`parse` with the text
Slack sends after the command, dispatches on the command's type, and posts ``str(error)``
for a :class:`UsageError`.

>>> from commands import parse, Deploy
>>> cmd = parse("deploy tax-api v2.4.1 to production --strategy gradual")
>>> isinstance(cmd, Deploy), cmd.env, cmd.strategy
(True, 'production', 'gradual')
>>> try:
...     parse("deploy tax-api v1 prod")
... except UsageError as err:
...     print(err.message)
expected 'to' before the environment, got 'prod'
"""

from commands.errors import CommandError, UnknownSubcommand, UsageError
from commands.grammar import SPECS, Arg, Flag, Spec
from commands.help import help_text
from commands.model import (
    Approve,
    Audit,
    Cancel,
    Command,
    Deploy,
    Freeze,
    Health,
    Help,
    History,
    Lock,
    Pause,
    Plan,
    Promote,
    Reject,
    RestoreDb,
    Resume,
    Rollback,
    Stats,
    Status,
    Strategy,
    Unfreeze,
    Unlock,
    Versions,
    normalize_release_id,
    release_number,
)
from commands.parser import parse
from commands.tokens import MAX_LENGTH
from commands.when import parse_since, parse_when

__all__ = [
    "MAX_LENGTH",
    "SPECS",
    "Approve",
    "Arg",
    "Audit",
    "Cancel",
    "Command",
    "CommandError",
    "Deploy",
    "Flag",
    "Freeze",
    "Health",
    "Help",
    "History",
    "Lock",
    "Pause",
    "Plan",
    "Promote",
    "Reject",
    "RestoreDb",
    "Resume",
    "Rollback",
    "Spec",
    "Stats",
    "Status",
    "Strategy",
    "Unfreeze",
    "UnknownSubcommand",
    "Unlock",
    "UsageError",
    "Versions",
    "help_text",
    "normalize_release_id",
    "parse",
    "parse_since",
    "parse_when",
    "release_number",
]
