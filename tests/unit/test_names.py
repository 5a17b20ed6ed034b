"""Did-you-mean for services and environments."""

from __future__ import annotations

import pytest

from bot.engine.names import did_you_mean, suggest, unknown_service

SERVICES = ["tax-api", "tax-web", "billing"]
ENVS = ["staging", "production"]


@pytest.mark.parametrize(
    ("typed", "known", "expected"),
    [
        ("tax-apii", SERVICES, ("tax-api",)),
        ("tax-ap", SERVICES, ("tax-api",)),
        ("TAX-API", SERVICES, ("tax-api",)),
        ("biling", SERVICES, ("billing",)),
        ("prod", ENVS, ("production",)),
        ("stage", ENVS, ("staging",)),
        ("prodution", ENVS, ("production",)),
        ("productions", ENVS, ("production",)),
        ("p", ENVS, ()),  # too short to be a hint
        ("zzz", SERVICES, ()),
        ("", SERVICES, ()),
    ],
)
def test_suggestions(typed: str, known: list[str], expected: tuple[str, ...]) -> None:
    assert suggest(typed, known)[: len(expected) or None] == expected


def test_a_prefix_comes_before_a_look_alike() -> None:
    assert suggest("tax", SERVICES) == ("tax-api", "tax-web")


def test_the_message_tail() -> None:
    assert did_you_mean(()) == ""
    assert did_you_mean(("a", "b")) == "; did you mean 'a' or 'b'?"
    assert unknown_service("tax-apii", SERVICES) == (
        "unknown service 'tax-apii'; did you mean 'tax-api'? (known: billing, tax-api, tax-web)"
    )
    assert (
        unknown_service("zzz", SERVICES)
        == "unknown service 'zzz' (known: billing, tax-api, tax-web)"
    )
