"""What Cloudflare says reaches Slack as data: a refusal whose message carries the API token,
Slack markup (a channel ping, a link) and a token-shaped string comes out in the card, its
thread, the private answers and the audit channel scrubbed and escaped."""

from __future__ import annotations

import json

from bot.engine.states import State
from bot.slack.text import set_secrets
from tests.fixtures.bot import BOT_TOKEN, SIGNING_SECRET, BotHarness
from tests.fixtures.cloudflare import TEST_TOKEN

DEPLOYMENTS = r"/workers/scripts/tax-api-staging/deployments$"
STRANGER_TOKEN = "xoxb-9999-stranger-token-abcdef"
HOSTILE = (
    f"token {TEST_TOKEN} refused <!channel> see <https://evil.example|the fix> & "
    f"Authorization: Bearer abc.def-1234567890123 {STRANGER_TOKEN}"
)


def test_a_cloudflare_refusal_is_scrubbed_and_escaped_everywhere_in_slack(
    bot: BotHarness,
) -> None:
    set_secrets([TEST_TOKEN, BOT_TOKEN, SIGNING_SECRET])  # as `releasebot run` does at start
    bot.cf.inject("POST", DEPLOYMENTS, 400, count=5, code=10021, message=HOSTILE)
    assert bot.command("deploy tax-api v1.4.2 to staging").status_code == 200
    final = bot.wait_for(lambda: (r := bot.release(1)) and r.state.is_terminal and r)
    assert final.state is State.FAILED
    bot.wait_for(lambda: "Failed" in str(bot.card("R-1").blocks), what="the card says so")
    bot.idle()
    said = json.dumps([m.as_dict() for m in bot.slack.messages]) + json.dumps(bot.slack.calls)
    assert "refused" in said, "Cloudflare's message is shown"
    for leak in (TEST_TOKEN, STRANGER_TOKEN, "abc.def-1234567890123"):
        assert leak not in said, leak
    for markup in ("<!channel>", "<https://evil.example|"):
        assert markup not in said, markup
    assert "&lt;!channel&gt;" in said
