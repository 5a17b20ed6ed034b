"""Any text after /release gets an answer within Slack's 3 seconds: never a 5xx, never a
traceback shown to the person."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.grammar import SPECS
from tests.fixtures.bot import BotHarness

WORDS = [
    *sorted(SPECS),
    "tax-api",
    "tax-web",
    "staging",
    "production",
    "to",
    "in",
    "until",
    "v1.4.2",
    "R-1",
    "--reason",
    "--limit",
    "--days",
    "--since",
    "--strategy",
    "gradual",
    "immediate",
    "2h",
    "<@U0ALICE|alice>",
    "<https://example.com|link>",
    '"quoted words"',
    "“smart quotes”",
    "--emergency",
    "999999999999",
    "R-0",
]

near_valid = st.lists(st.sampled_from(WORDS), min_size=0, max_size=7).map(" ".join)
anything = st.text(max_size=300)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.one_of(near_valid, anything))
def test_every_command_text_is_answered_quickly(bot: BotHarness, text: str) -> None:
    started = time.monotonic()
    response = bot.command(text, user="U0MALLORY")
    assert time.monotonic() - started < 3
    assert response.status_code == 200
    assert "Traceback" not in response.text
    for message in bot.ephemerals("U0MALLORY"):
        assert "Traceback" not in message.text and "Error:" not in message.text[:6]
