"""Text after the slash command -> a typed command, or a :class:`UsageError` that says why not.

The parser is pure: no Slack, no clock, no I/O. It follows the specs in
:mod:`commands.grammar`; options may appear anywhere after the subcommand.

>>> parse('rollback Tax-API in production --reason “errors up”')
Rollback(service='tax-api', env='production', to_version=None, reason='errors up')
>>> parse("approve #r-42")
Approve(release_id='R-42')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from commands import model
from commands.errors import UnknownSubcommand, UsageError, closest, did_you_mean, quoted
from commands.grammar import SPECS, Arg, Flag, Spec
from commands.tokens import QUOTES, Token, check_characters, tokenize
from commands.when import parse_since, parse_when

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_VERSION = re.compile(r"[^\s<>]{1,128}")
_INTEGER = re.compile(r"[0-9]{1,6}")
# Phones and Slack's own formatting turn "--" into a dash; accept the dash forms too.
_FLAG_PREFIXES = ("--", "—", "–")
_HELP_FLAGS = frozenset({"--help", "-h", "—help", "–help"})
MAX_REASON = 500
# <when> values are checked for shape only, against a fixed moment: the parser has no clock.
_SHAPE_CHECK_NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Word:
    """A positional token; ``run`` changes at every option, ``after_text`` follows a reason."""

    token: Token
    run: int
    after_text: bool


def parse(text: str, command_name: str = "/release") -> model.Command:
    """Parse the text Slack sends after ``command_name``; empty text is ``Help()``.

    Raises :class:`UsageError` (never anything else) when the text does not fit; its
    ``usage`` starts with ``command_name``.

    >>> parse("")
    Help(topic=None)
    >>> parse("history tax-api --limit 5", "/deploybot")
    History(service='tax-api', env=None, limit=5)
    """
    generic_usage = f"{command_name} <subcommand> [arguments]"
    first_word = text.split(maxsplit=1)[0].lower() if text.strip() else ""
    guessed = SPECS.get(first_word)
    try:
        check_characters(text)
        tokens = tokenize(text)
    except UsageError as exc:
        usage = guessed.usage(command_name) if guessed else generic_usage
        raise _in_context(exc, usage, guessed.name if guessed else None, command_name) from None
    if not tokens:
        return model.Help()
    head = tokens[0].text.lower()
    if head in _HELP_FLAGS or head == "?":
        return model.Help()
    spec = SPECS.get(head)
    if spec is None:
        suggestions = closest(head, SPECS)
        raise UnknownSubcommand(
            f"unknown subcommand {quoted(tokens[0].raw)}" + did_you_mean(suggestions),
            token=tokens[0].raw,
            usage=generic_usage,
            suggestions=suggestions,
            command_name=command_name,
        )
    rest = tokens[1:]
    if any(not tok.quoted and tok.text.lower() in _HELP_FLAGS for tok in rest):
        return model.Help(spec.name)
    try:
        return _parse_spec(spec, rest)
    except UsageError as exc:
        raise _in_context(exc, spec.usage(command_name), spec.name, command_name) from None


def _in_context(
    exc: UsageError, usage: str, subcommand: str | None, command_name: str
) -> UsageError:
    """The same error, now showing ``usage`` and pointing at the subcommand's help."""
    if isinstance(exc, UnknownSubcommand):
        return UnknownSubcommand(
            exc.message,
            token=exc.token,
            usage=usage,
            suggestions=exc.suggestions,
            command_name=command_name,
        )
    return UsageError(
        exc.message,
        token=exc.token,
        usage=usage,
        subcommand=subcommand,
        command_name=command_name,
    )


def _flag_parts(token: Token) -> tuple[str, str | None] | None:
    """``(name, inline value)`` when the token is an option, else None."""
    if token.quoted:
        return None
    for prefix in _FLAG_PREFIXES:
        if token.text.startswith(prefix):
            name, sep, value = token.text[len(prefix) :].partition("=")
            return name.lower(), (value if sep else None)
    return None


def _parse_spec(spec: Spec, tokens: list[Token]) -> model.Command:
    values: dict[str, object] = {}
    words: list[_Word] = []
    run = 0
    after_text = False
    index = 0
    while index < len(tokens):
        token = tokens[index]
        parts = _flag_parts(token)
        if parts is None:
            words.append(_Word(token, run, after_text))
            after_text = False
            index += 1
            continue
        run += 1
        name, inline = parts
        flag = spec.flag(name)
        if flag is None:
            raise UsageError(_unknown_option(spec, token.raw, name), token=token.raw)
        if flag.field in values:
            raise UsageError(f"--{flag.name} is given more than once", token=token.raw)
        if flag.kind == "bool":
            if inline is not None:
                raise UsageError(f"--{flag.name} takes no value", token=token.raw)
            values[flag.field] = True
            index += 1
            after_text = False
            continue
        if inline is not None:
            raw_value = inline
            value_quoted = token.raw.partition("=")[2][:1] in QUOTES
            index += 1
        elif index + 1 < len(tokens) and _flag_parts(tokens[index + 1]) is None:
            raw_value = tokens[index + 1].text
            value_quoted = tokens[index + 1].quoted
            index += 2
        else:
            raise UsageError(f"--{flag.name} needs a value ({flag.metavar})", token=token.raw)
        values[flag.field] = _flag_value(flag, raw_value)
        # An unquoted reason followed by more words was most likely meant as one reason.
        after_text = flag.kind == "text" and not value_quoted
    _match_words(spec, words, values)
    if values.get("emergency") and not values.get("reason"):
        raise UsageError(
            '--emergency needs --reason "...": say why the freeze has to be broken',
            token="--emergency",
        )
    # Each value was checked against its field by the spec; a type checker cannot see that.
    return spec.command(**values)  # type: ignore[arg-type]


def _unknown_option(spec: Spec, raw: str, name: str) -> str:
    if not spec.flags:
        return f"unknown option {quoted(raw)} ({spec.name} takes no options)"
    return f"unknown option {quoted(raw)}" + did_you_mean(
        tuple(f"--{found}" for found in closest(name, [flag.name for flag in spec.flags]))
    )


def _match_words(spec: Spec, words: list[_Word], values: dict[str, object]) -> None:
    """Fill ``values`` from the positional words: plain arguments first, then keywords."""
    keywords = spec.keywords
    position = 0
    for arg in (arg for arg in spec.args if not arg.keyword):
        word = words[position].token if position < len(words) else None
        is_keyword = word is not None and not word.quoted and word.text.lower() in keywords
        if word is None or is_keyword:
            if arg.optional:
                continue
            if word is not None:
                raise UsageError(f"missing {arg.metavar} before {quoted(word.raw)}", token=word.raw)
            raise UsageError(f"missing {arg.metavar}")
        values[arg.field] = _arg_value(arg, word.text)
        position += 1
    while position < len(words):
        item = words[position]
        keyword = item.token.text.lower() if not item.token.quoted else ""
        found = keywords.get(keyword)
        if found is None:
            raise UsageError(_unexpected(keywords, values, item), token=item.token.raw)
        if found.field in values:
            raise UsageError(f"'{keyword}' is given more than once", token=item.token.raw)
        if found.greedy:
            # The words up to the next option; any after it are reported as unexpected.
            taken = _contiguous(words, position + 1, item.run)
            position += 1 + len(taken)
        else:
            taken = [words[position + 1].token.text] if position + 1 < len(words) else []
            position += 2
        if not taken:
            raise UsageError(f"expected {found.metavar} after '{keyword}'", token=item.token.raw)
        values[found.field] = _arg_value(found, " ".join(taken))
    for arg in keywords.values():
        if not arg.optional and arg.field not in values:
            raise UsageError(f"missing '{arg.keyword} {arg.metavar}'")


def _contiguous(words: list[_Word], start: int, run: int) -> list[str]:
    taken: list[str] = []
    for word in words[start:]:
        if word.run != run:
            break
        taken.append(word.token.text)
    return taken


def _unexpected(keywords: dict[str, Arg], values: dict[str, object], word: _Word) -> str:
    pending = [arg for arg in keywords.values() if arg.field not in values]
    shown = word.token.raw
    if word.after_text:
        return (
            f'unexpected {quoted(shown)}; put a reason of several words in quotes: --reason "..."'
        )
    if pending:
        expected = " or ".join(f"'{arg.keyword}' before {arg.label}" for arg in pending)
        return f"expected {expected}, got {quoted(shown)}"
    return f"unexpected {quoted(shown)}"


def _arg_value(arg: Arg, text: str) -> object:
    return _convert(arg.kind, text, arg.metavar.strip("<>"))


def _flag_value(flag: Flag, text: str) -> object:
    if flag.kind == "int":
        if not _INTEGER.fullmatch(text) or not flag.minimum <= int(text) <= flag.maximum:
            raise UsageError(
                f"--{flag.name} must be a whole number from {flag.minimum} to {flag.maximum}, "
                f"got {quoted(text)}",
                token=text,
            )
        return int(text)
    if flag.kind == "choice":
        if text.lower() not in flag.choices:
            allowed = " or ".join(flag.choices)
            raise UsageError(f"--{flag.name} must be {allowed}, got {quoted(text)}", token=text)
        return text.lower()
    return _convert(flag.kind, text, f"--{flag.name}")


def _convert(kind: str, text: str, what: str) -> object:
    """Check and normalise one value of ``kind``; ``what`` names it in messages."""
    if kind == "name":
        name = text.lower()
        if not _NAME.fullmatch(name):
            raise UsageError(
                f"{quoted(text)} is not a valid {what} name (letters, digits, '-' and '_', "
                "at most 63 characters)",
                token=text,
            )
        return name
    if kind == "version":
        if not _VERSION.fullmatch(text):
            raise UsageError(
                f"{quoted(text)} is not a valid version (a Worker version id or a tag, no spaces)",
                token=text,
            )
        return text
    if kind == "release_id":
        release_id = model.normalize_release_id(text)
        if release_id is None:
            raise UsageError(f"{quoted(text)} is not a release id; use e.g. R-42", token=text)
        return release_id
    if kind == "topic":
        topic = text.lower()
        if topic not in SPECS:
            suggestions = closest(topic, SPECS)
            raise UnknownSubcommand(
                f"no help on {quoted(text)}: it is not a subcommand" + did_you_mean(suggestions),
                token=text,
                suggestions=suggestions,
            )
        return topic
    if kind in ("when", "since"):
        reader = parse_when if kind == "when" else parse_since
        reader(text, _SHAPE_CHECK_NOW)
        return text
    reason = text.strip()
    if not reason:
        raise UsageError(f"{what} is empty", token=text)
    if len(reason) > MAX_REASON:
        raise UsageError(f"{what} is too long ({len(reason)} characters; at most {MAX_REASON})")
    return reason
