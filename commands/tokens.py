"""Splitting command text into tokens, the way people type it in Slack.

Whitespace separates tokens; quotes group words. Straight quotes and the curly ones Slack
clients and phones substitute (“…”, ‘…’) both work, and any quote of the same kind closes.
A quote opens only at the start of a token or right after ``=`` (``--reason="a b"``), so
apostrophes inside words (``don't``) stay literal; it closes at the first quote of its kind
that ends a word, so ``'it's fine'`` reads as one token.

>>> [t.text for t in tokenize('deploy tax-api --reason “fix rounding” ')]
['deploy', 'tax-api', '--reason', 'fix rounding']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from commands.errors import UsageError

MAX_LENGTH = 4000

_DOUBLE = frozenset('"“”„')
_SINGLE = frozenset("'‘’‚")
QUOTES = _DOUBLE | _SINGLE
# Invisible characters that reorder displayed text: harmless in a command, but in a reason
# they would make the audit trail read differently from what was stored.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# What check_characters refuses: control characters (category Cc) but tab and newlines, which
# are ordinary whitespace (the others would end up in the database, where PostgreSQL refuses
# NUL, and in Slack messages); lone surrogates (Cs); the direction controls above.
_REFUSED = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff" + "".join(sorted(_BIDI)) + "]"
)
_ANY_QUOTE = re.compile(f"[{re.escape(''.join(sorted(_DOUBLE | _SINGLE)))}]")
# Slack escapes these three in the text of a slash command.
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))
# Regular expressions rather than a loop: every token may open a quote, and a scan in Python
# per token would make long adversarial input slow.
_CLOSERS = {
    family: (
        re.compile(f"[{re.escape(''.join(family))}](?=\\s|$)"),
        re.compile(f"[{re.escape(''.join(family))}]"),
    )
    for family in (_DOUBLE, _SINGLE)
}


@dataclass(frozen=True, slots=True)
class Token:
    """One word of the command: ``text`` unquoted and unescaped, ``raw`` as typed.

    ``quoted`` is true when the token began with a quote: such a token is always a value,
    never an option or a keyword.
    """

    text: str
    raw: str
    quoted: bool


def check_characters(text: str) -> None:
    """Refuse input no command can contain: too long, control or direction characters."""
    if len(text) > MAX_LENGTH:
        raise UsageError(f"the command is too long ({len(text)} characters; at most {MAX_LENGTH})")
    found = _REFUSED.search(text)
    if found is not None:
        char = found.group()
        raise UsageError(
            f"the command contains an invisible control character (U+{ord(char):04X}); "
            "please retype it",
            token=char,
        )


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; an unclosed quote is a :class:`UsageError` naming it.

    >>> [t.text for t in tokenize("--reason='it's fine' now")]
    ["--reason=it's fine", 'now']
    """
    if _ANY_QUOTE.search(text) is None:  # the usual case: words and spaces only
        return [Token(text=_unescape(word), raw=word, quoted=False) for word in text.split()]
    return _scan(text)


def _scan(text: str) -> list[Token]:
    """:func:`tokenize` character by character, for text with quotes in it."""
    tokens: list[Token] = []
    pos = 0
    length = len(text)
    while pos < length:
        if text[pos].isspace():
            pos += 1
            continue
        start = pos
        parts: list[str] = []
        quoted = text[pos] in _DOUBLE or text[pos] in _SINGLE
        while pos < length and not text[pos].isspace():
            char = text[pos]
            opens_here = pos == start or text[pos - 1] == "="
            if opens_here and (char in _DOUBLE or char in _SINGLE):
                family = _DOUBLE if char in _DOUBLE else _SINGLE
                close = _closing_quote(text, pos + 1, family)
                if close is None:
                    shown = text[pos:].strip()
                    if len(shown) > 30:
                        shown = shown[:29] + "…"
                    raise UsageError(f"missing closing quote in {shown}", token=text[pos:])
                parts.append(text[pos + 1 : close])
                pos = close + 1
                continue
            parts.append(char)
            pos += 1
        raw = text[start:pos]
        tokens.append(Token(text=_unescape("".join(parts)), raw=raw, quoted=quoted))
    return tokens


def _closing_quote(text: str, begin: int, family: frozenset[str]) -> int | None:
    """Index of the quote closing one opened just before ``begin``, or None.

    Prefer a quote that ends a word; else the first quote of the family at all.
    """
    ends_word, anywhere = _CLOSERS[family]
    match = ends_word.search(text, begin) or anywhere.search(text, begin)
    return match.start() if match else None


def _unescape(text: str) -> str:
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text
