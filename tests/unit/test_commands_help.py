"""Help text comes from the grammar table, so every subcommand and example is covered."""

from __future__ import annotations

import dataclasses

import pytest

from commands import SPECS, Help, UnknownSubcommand, help_text, parse

CONTRACT_USAGE = [
    '/release deploy <service> <version> [to <env>] [--reason "..."] '
    "[--strategy gradual|immediate] [--emergency]",
    "/release plan <service> <version> [to <env>]",
    '/release rollback <service> [in <env>] [to <version>] [--reason "..."]',
    "/release status [<service>] [<env>]",
    "/release history <service> [<env>] [--limit N]",
    "/release versions <service> [<env>]",
    "/release health <service> [<env>]",
    "/release approve <release-id>",
    '/release reject <release-id> [--reason "..."]',
    "/release cancel <release-id>",
    "/release promote <release-id>",
    "/release pause <release-id>",
    "/release resume <release-id>",
    '/release lock <service> <env> [--reason "..."]',
    "/release unlock <service> <env>",
    '/release freeze <env> until <when> [--reason "..."]',
    "/release unfreeze <env>",
    "/release restore-db <release-id>",
    "/release stats [<service>] [--days N]",
    "/release audit [<service>] [--since <when>]",
    "/release migrations <service> [<env>]",
    "/release help [<subcommand>]",
]


def test_usage_lines_match_the_operator_contract() -> None:
    assert [spec.usage() for spec in SPECS.values()] == CONTRACT_USAGE


def test_overview_lists_every_spec_with_its_usage_and_summary() -> None:
    overview = help_text()
    for spec in SPECS.values():
        assert f"`{spec.usage()}`: {spec.summary}" in overview
    assert "`/release help <subcommand>`" in overview


def test_empty_command_is_the_overview() -> None:
    assert parse("") == Help()
    assert help_text(parse("").topic) == help_text()


@pytest.mark.parametrize("name", list(SPECS))
def test_topic_help_shows_usage_description_options_and_examples(name: str) -> None:
    spec = SPECS[name]
    text = help_text(name)
    assert text.startswith(f"`{spec.usage()}`")
    assert spec.description in text
    for flag in spec.flags:
        assert f"`--{flag.name}" in text and flag.help in text
    for example in spec.examples:
        assert f"`/release {example}`" in text


@pytest.mark.parametrize(
    ("name", "example"), [(spec.name, ex) for spec in SPECS.values() for ex in spec.examples]
)
def test_every_example_parses_to_its_own_command(name: str, example: str) -> None:
    assert isinstance(parse(example), SPECS[name].command)


@pytest.mark.parametrize("name", list(SPECS))
def test_grammar_fields_match_the_command_dataclasses(name: str) -> None:
    spec = SPECS[name]
    fields = {field.name for field in dataclasses.fields(spec.command)}
    named = {arg.field for arg in spec.args} | {flag.field for flag in spec.flags}
    assert named == fields
    assert spec.command.subcommand == name


def test_help_for_a_topic_is_case_insensitive() -> None:
    assert help_text("Deploy ") == help_text("deploy")


def test_unknown_topic_suggests_the_closest() -> None:
    with pytest.raises(UnknownSubcommand) as caught:
        help_text("rolback")
    assert "did you mean 'rollback'?" in str(caught.value)
    assert caught.value.suggestions[0] == "rollback"
    assert str(caught.value).count("/release help") >= 1


def test_custom_command_name_everywhere_in_help() -> None:
    overview = help_text(command_name="/deploybot")
    topic = help_text("freeze", command_name="/deploybot")
    for text in (overview, topic):
        assert "/release" not in text
        assert "/deploybot" in text
    assert topic.startswith("`/deploybot freeze <env> until <when>")
    assert "`/deploybot freeze production until friday 18:00" in topic
