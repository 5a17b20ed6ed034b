"""Whatever is typed, parse answers with a command or a postable usage error, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands import SPECS, Command, Help, UsageError, help_text, parse, parse_since, parse_when
from commands.tokens import _scan, check_characters, tokenize

# The grammar's own vocabulary, so generated text gets deep into the parser, not just past
# the first word.
_WORDS = sorted(
    {spec.name for spec in SPECS.values()}
    | {arg.keyword for spec in SPECS.values() for arg in spec.args if arg.keyword}
    | {f"--{flag.name}" for spec in SPECS.values() for flag in spec.flags}
    | {f"--{flag.name}=" for spec in SPECS.values() for flag in spec.flags}
)
_VALUES = [
    "tax-api", "production", "Staging", "v2.4.1", "R-42", "#r-7", "42", "0", "101", "-5",
    "friday", "18:00", "2h", "tomorrow", "2026-12-01", "gradual", "immediate", "--help",
    "<@U123|alice>", "<https://x.io|x>", "&amp;", "—reason", "“", "”", "‘", "’", '"', "'",
    "=", "", "é", "🚀", "\u202e", "\x00", "\t", "\n",
]  # fmt: skip
_word = st.sampled_from(_WORDS + _VALUES) | st.text(max_size=8)
_near_valid = st.builds(
    lambda head, rest, seps: "".join(w + s for w, s in zip([head, *rest], seps, strict=False)),
    st.sampled_from(sorted(SPECS)),
    st.lists(_word, max_size=8),
    st.lists(st.sampled_from([" ", " ", "  ", "\t", "", "="]), min_size=9, max_size=9),
)


def _answers(text: str, command_name: str = "/release") -> Command | UsageError:
    try:
        return parse(text, command_name)
    except UsageError as err:
        return err


def _check(text: str, command_name: str = "/release") -> None:
    result = _answers(text, command_name)
    if isinstance(result, UsageError):
        reply = str(result)
        assert reply.strip()
        assert command_name in reply
        assert result.message
        if result.usage is not None:
            assert all(line.startswith(command_name) for line in result.usage.splitlines())
    else:
        assert result.subcommand in SPECS
        assert isinstance(result, SPECS[result.subcommand].command)
        if isinstance(result, Help):
            help_text(result.topic, command_name)  # a parsed topic always has help


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gives_a_command_or_a_usage_error(text: str) -> None:
    _check(text)


@settings(max_examples=400, deadline=None)
@given(_near_valid)
def test_near_valid_commands_give_a_command_or_a_usage_error(text: str) -> None:
    _check(text)


@settings(max_examples=100, deadline=None)
@given(_near_valid, st.sampled_from(["/release", "/deploybot"]))
def test_the_configured_command_name_is_in_every_reply(text: str, command_name: str) -> None:
    _check(text, command_name)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | st.sampled_from(_VALUES) | _near_valid)
def test_times_are_read_or_refused_as_usage_errors(text: str) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    for reader in (parse_when, parse_since):
        try:
            assert reader(text, now).tzinfo is not None
        except UsageError as err:
            assert err.message


def test_very_long_and_adversarial_input_stays_fast() -> None:
    for text in ('"a"b ' * 800, "deploy " + "'x " * 1300, "—" * 4000, "deploy " + "a" * 3990):
        assert isinstance(_answers(text[:4000]), Command | UsageError)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(blacklist_characters="\"“”„'‘’‚"), max_size=60))
def test_text_without_quotes_splits_as_the_scanner_does(text: str) -> None:
    assert tokenize(text) == _scan(text)


def test_refused_characters_follow_the_unicode_categories() -> None:
    for char in ("\x00", "\x1b", "\x7f", "\x85", "\ud800", "\u202e", "\u2066"):
        with pytest.raises(UsageError, match=f"U\\+{ord(char):04X}"):
            check_characters(f"status {char}tax-api")
    for char in ("\t", "\n", "\r", " ", "é", "🚀", "\u200b", "\u2028"):
        check_characters(f"status {char}tax-api")
