"""The /release grammar as chat transcripts: what an operator types, what comes back."""

from __future__ import annotations

import pytest

from commands import (
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
    Unfreeze,
    UnknownSubcommand,
    Unlock,
    UsageError,
    Versions,
    parse,
)


def run(line: str, command_name: str = "/release") -> Command | str:
    """What the bot makes of a line typed in Slack: a command, or the reply it would post."""
    command, _, text = line.partition(" ")
    assert command == command_name, "Slack sends the command and its text separately"
    try:
        return parse(text, command_name)
    except UsageError as err:
        return str(err)


def error_of(line: str, command_name: str = "/release") -> UsageError:
    command, _, text = line.partition(" ")
    assert command == command_name
    with pytest.raises(UsageError) as caught:
        parse(text, command_name)
    return caught.value


ACCEPTED: list[tuple[str, Command]] = [
    # deploy
    ("/release deploy tax-api v2.4.1", Deploy("tax-api", "v2.4.1")),
    ("/release deploy tax-api v2.4.1 to production", Deploy("tax-api", "v2.4.1", "production")),
    (
        '/release deploy tax-api 3f2c9a1e to production --reason "fix rounding"',
        Deploy("tax-api", "3f2c9a1e", "production", reason="fix rounding"),
    ),
    (
        "/release deploy tax-api v1 --reason “smart quotes from a phone” to staging",
        Deploy("tax-api", "v1", "staging", reason="smart quotes from a phone"),
    ),
    (
        "/release deploy tax-api v1 --reason ‘it’s urgent’",
        Deploy("tax-api", "v1", reason="it’s urgent"),
    ),
    (
        "/release deploy tax-api v1 --reason 'it's urgent'",
        Deploy("tax-api", "v1", reason="it's urgent"),
    ),
    (
        '/release deploy tax-api v1 --reason="two words" --strategy=immediate',
        Deploy("tax-api", "v1", reason="two words", strategy="immediate"),
    ),
    (
        "/release deploy tax-api v1 --strategy GRADUAL to staging",
        Deploy("tax-api", "v1", "staging", strategy="gradual"),
    ),
    (
        '/release deploy tax-api v1 to production --emergency --reason "INC-7 hotfix"',
        Deploy("tax-api", "v1", "production", reason="INC-7 hotfix", emergency=True),
    ),
    (
        # macOS and phones turn "--" into an em dash.
        "/release deploy tax-api v1 —emergency —reason outage",
        Deploy("tax-api", "v1", reason="outage", emergency=True),
    ),
    ("/release DEPLOY Tax-API V1-RC TO Production", Deploy("tax-api", "V1-RC", "production")),
    ("/release   deploy\ttax-api  v1\n", Deploy("tax-api", "v1")),
    ("/release deploy tax-api v1 --reason R&amp;D", Deploy("tax-api", "v1", reason="R&D")),
    # plan
    ("/release plan tax-api v2", Plan("tax-api", "v2")),
    ("/release plan tax-api v2 to production", Plan("tax-api", "v2", "production")),
    # rollback: "in" names the environment, "to" the version, in either order
    ("/release rollback tax-api", Rollback("tax-api")),
    ("/release rollback tax-api in production", Rollback("tax-api", "production")),
    ("/release rollback tax-api in staging to v2.3.0", Rollback("tax-api", "staging", "v2.3.0")),
    ("/release rollback tax-api to v2.3.0 in staging", Rollback("tax-api", "staging", "v2.3.0")),
    (
        '/release rollback tax-api in production --reason "errors up"',
        Rollback("tax-api", "production", reason="errors up"),
    ),
    # status, history, versions, health: the environment is positional
    ("/release status", Status()),
    ("/release status tax-api", Status("tax-api")),
    ("/release status tax-api production", Status("tax-api", "production")),
    ("/release history tax-api", History("tax-api")),
    ("/release history tax-api production", History("tax-api", "production")),
    ("/release history tax-api --limit 5 production", History("tax-api", "production", 5)),
    ("/release history tax-api --limit=100", History("tax-api", limit=100)),
    ("/release versions tax-api", Versions("tax-api")),
    ("/release versions tax-api staging", Versions("tax-api", "staging")),
    ("/release health tax-api", Health("tax-api")),
    ("/release health tax-api production", Health("tax-api", "production")),
    # release ids, however they are typed
    ("/release approve R-42", Approve("R-42")),
    ("/release approve r-42", Approve("R-42")),
    ("/release approve 42", Approve("R-42")),
    ("/release approve #R-42", Approve("R-42")),
    ("/release approve R-042", Approve("R-42")),
    ("/release reject R-7", Reject("R-7")),
    ('/release reject r-7 --reason "needs a changelog"', Reject("R-7", "needs a changelog")),
    ("/release cancel #9", Cancel("R-9")),
    ("/release promote R-3", Promote("R-3")),
    ("/release pause R-3", Pause("R-3")),
    ("/release resume R-3", Resume("R-3")),
    ("/release restore-db R-12", RestoreDb("R-12")),
    # locks and freezes
    ("/release lock tax-api production", Lock("tax-api", "production")),
    (
        '/release lock tax-api production --reason "migration running"',
        Lock("tax-api", "production", "migration running"),
    ),
    ("/release unlock tax-api production", Unlock("tax-api", "production")),
    ("/release freeze production until tomorrow", Freeze("production", "tomorrow")),
    (
        '/release freeze production until friday 18:00 --reason "release week"',
        Freeze("production", "friday 18:00", "release week"),
    ),
    (
        '/release freeze production --reason "quiet" until 2026-12-01 18:00',
        Freeze("production", "2026-12-01 18:00", "quiet"),
    ),
    ("/release freeze staging until 2h", Freeze("staging", "2h")),
    ("/release unfreeze production", Unfreeze("production")),
    # metrics and audit
    ("/release stats", Stats()),
    ("/release stats tax-api", Stats("tax-api")),
    ("/release stats tax-api --days 30", Stats("tax-api", 30)),
    ("/release stats --days 365", Stats(days=365)),
    ("/release audit", Audit()),
    ("/release audit tax-api", Audit("tax-api")),
    ("/release audit tax-api --since 7d", Audit("tax-api", "7d")),
    ('/release audit --since "2026-11-01 09:00"', Audit(since="2026-11-01 09:00")),
    # help
    ("/release", Help()),
    ("/release    ", Help()),
    ("/release help", Help()),
    ("/release help deploy", Help("deploy")),
    ("/release help RESTORE-DB", Help("restore-db")),
    ("/release deploy tax-api --help", Help("deploy")),
    ("/release --help", Help()),
]


@pytest.mark.parametrize(("line", "expected"), ACCEPTED, ids=[line for line, _ in ACCEPTED])
def test_accepted(line: str, expected: Command) -> None:
    assert run(line) == expected


def test_release_id_has_an_int_accessor() -> None:
    command = parse("approve #r-42")
    assert isinstance(command, Approve)
    assert command.release_id == "R-42"
    assert command.release_number == 42


# (line, what the reply must say, the offending token the error carries)
REFUSED: list[tuple[str, str, str | None]] = [
    ("/release deploy", "missing <service>", None),
    ("/release deploy tax-api", "missing <version>", None),
    ("/release deploy tax-api to prod", "missing <version> before 'to'", "to"),
    (
        "/release deploy tax-api v1 prod",
        "expected 'to' before the environment, got 'prod'",
        "prod",
    ),
    ("/release deploy tax-api v1 to", "expected <env> after 'to'", "to"),
    ("/release deploy tax-api v1 to prod to qa", "'to' is given more than once", "to"),
    ("/release deploy tax-api v1 --force", "unknown option '--force'", "--force"),
    ("/release deploy tax-api v1 --reson x", "did you mean '--reason'?", "--reson"),
    ("/release deploy tax-api v1 --reason a --reason b", "--reason is given more than once", None),
    ("/release deploy tax-api v1 --reason", "--reason needs a value", "--reason"),
    ("/release deploy tax-api v1 --reason --strategy gradual", "--reason needs a value", None),
    ('/release deploy tax-api v1 --reason ""', "--reason is empty", ""),
    ('/release deploy tax-api v1 --reason "fix rounding', "missing closing quote", None),
    ("/release deploy tax-api v1 --reason “fix rounding", "missing closing quote", None),
    ("/release deploy tax-api v1 --reason hot fix", "unexpected 'fix'; put a reason", "fix"),
    (
        "/release deploy tax-api v1 --strategy fast",
        "must be gradual or immediate, got 'fast'",
        "fast",
    ),
    ("/release deploy tax-api v1 --emergency", "--emergency needs --reason", "--emergency"),
    ("/release deploy tax-api v1 --emergency=yes --reason x", "takes no value", None),
    ("/release deploy Tax_API! v1", "'Tax_API!' is not a valid service name", "Tax_API!"),
    ("/release deploy <@U123|alice> v1", "'<@U123|alice>' is not a valid service name", None),
    ("/release deploy tax-api <https://x.io|x>", "is not a valid version", None),
    ("/release deploy tax-api v1 to <#C123|prod>", "is not a valid env name", None),
    ("/release plan tax-api v1 --reason x", "unknown option '--reason' (plan takes no", "--reason"),
    (
        "/release rollback tax-api production",
        "expected 'in' before the environment or 'to' before the version, got 'production'",
        "production",
    ),
    ("/release rollback tax-api in", "expected <env> after 'in'", "in"),
    ("/release status tax-api production extra", "unexpected 'extra'", "extra"),
    ("/release history", "missing <service>", None),
    ("/release history tax-api --limit 0", "--limit must be a whole number from 1 to 100", "0"),
    ("/release history tax-api --limit 101", "got '101'", "101"),
    ("/release history tax-api --limit ten", "got 'ten'", "ten"),
    ("/release history tax-api --limit -5", "got '-5'", "-5"),
    ("/release history tax-api --limit 5 --limit 6", "--limit is given more than once", None),
    ("/release approve", "missing <release-id>", None),
    ("/release approve R-x", "'R-x' is not a release id", "R-x"),
    ("/release approve R-0", "'R-0' is not a release id", "R-0"),
    ("/release approve R-1 R-2", "unexpected 'R-2'", "R-2"),
    ("/release cancel R-1 --reason x", "unknown option '--reason' (cancel takes no options)", None),
    ("/release lock tax-api", "missing <env>", None),
    ("/release freeze production", "missing 'until <when>'", None),
    ("/release freeze production friday", "expected 'until' before the time, got 'friday'", None),
    ("/release freeze production until", "expected <when> after 'until'", "until"),
    ("/release freeze production until fridya", "can't read 'fridya' as a time", "fridya"),
    ("/release freeze production until 2026-02-30", "not a valid date", None),
    ("/release stats --days 366", "--days must be a whole number from 1 to 365", "366"),
    ("/release audit --since whenever", "can't read 'whenever' as a time", "whenever"),
    ("/release help deplyo", "did you mean 'deploy'?", "deplyo"),
    ("/release deploy tax-api v1 \x00", "control character (U+0000)", "\x00"),
    ("/release deploy tax-api v1 --reason \u202eevil", "control character (U+202E)", None),
]


@pytest.mark.parametrize(("line", "says", "token"), REFUSED, ids=[line for line, *_ in REFUSED])
def test_refused_with_the_reason_and_the_usage(line: str, says: str, token: str | None) -> None:
    subcommand = line.split()[1]
    reply = run(line)
    assert isinstance(reply, str)
    assert says in reply
    err = error_of(line)
    if subcommand != "help":
        assert err.usage is not None
        assert err.usage.startswith(f"/release {subcommand}")
        assert f"Usage: `/release {subcommand}" in reply
        assert f"`/release help {subcommand}`" in reply
    if token is not None:
        assert err.token == token


def test_error_attributes_name_the_token_and_the_usage() -> None:
    err = error_of("/release deploy tax-api v1 --force")
    assert err.message == "unknown option '--force'"
    assert err.token == "--force"
    assert err.subcommand == "deploy"
    assert err.usage == (
        '/release deploy <service> <version> [to <env>] [--reason "..."] '
        "[--strategy gradual|immediate] [--emergency]"
    )
    assert str(err).splitlines() == [
        "unknown option '--force'",
        f"Usage: `{err.usage}`",
        "See `/release help deploy` for details.",
    ]


def test_unknown_subcommand_suggests_the_closest() -> None:
    err = error_of("/release deplyo tax-api v1")
    assert isinstance(err, UnknownSubcommand)
    assert err.suggestions[0] == "deploy"
    assert err.token == "deplyo"
    reply = str(err)
    assert "unknown subcommand 'deplyo'; did you mean 'deploy'?" in reply
    assert "`/release help`" in reply


def test_unknown_subcommand_with_nothing_close() -> None:
    err = error_of("/release xyzzy")
    assert isinstance(err, UnknownSubcommand)
    assert err.suggestions == ()
    assert str(err).startswith("unknown subcommand 'xyzzy'\n")


def test_restore_db_typo_is_suggested() -> None:
    err = error_of("/release restoredb R-4")
    assert isinstance(err, UnknownSubcommand)
    assert "restore-db" in err.suggestions


def test_errors_are_command_errors() -> None:
    from commands import CommandError

    assert issubclass(UsageError, CommandError)
    assert issubclass(UnknownSubcommand, UsageError)


def test_too_long_input_is_refused_clearly() -> None:
    err = error_of("/release deploy tax-api v1 --reason " + "x" * 5000)
    assert "too long" in err.message
    assert "at most 4000" in err.message
    assert str(err).count("/release deploy") == 1


def test_a_long_offending_token_is_shortened_in_the_message() -> None:
    err = error_of("/release deploy " + "X" * 300 + "! v1")
    assert err.token == "X" * 300 + "!"
    assert "…" in err.message
    assert len(err.message) < 150


def test_long_reason_is_refused() -> None:
    err = error_of("/release deploy tax-api v1 --reason " + "x" * 600)
    assert "--reason is too long" in err.message


def test_a_missing_quote_names_the_subcommand_when_it_can() -> None:
    reply = run('/release lock tax-api prod --reason "half')
    assert "missing closing quote" in reply
    assert "Usage: `/release lock <service> <env>" in reply


def test_custom_command_name_is_in_every_usage_line() -> None:
    assert run("/deploybot deploy tax-api v1", "/deploybot") == Deploy("tax-api", "v1")
    reply = run("/deploybot deploy tax-api v1 prod", "/deploybot")
    assert isinstance(reply, str)
    assert "Usage: `/deploybot deploy <service>" in reply
    assert "`/deploybot help deploy`" in reply
    assert "/release" not in reply
    unknown = run("/deploybot deplyo", "/deploybot")
    assert isinstance(unknown, str)
    assert "`/deploybot help`" in unknown and "/release" not in unknown


def test_commands_are_frozen_and_hashable() -> None:
    command = parse("deploy tax-api v1")
    with pytest.raises(AttributeError):
        command.service = "other"  # type: ignore[misc]
    assert {command, parse("deploy TAX-API v1")} == {command}
    assert command.subcommand == "deploy"
