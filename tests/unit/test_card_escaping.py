"""Outside text is data in every block the bot builds: mrkdwn shows it escaped, plain_text
objects (headers, buttons, modal titles) show it as typed, and nothing is escaped twice."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.engine import notices as n
from bot.engine.errors import NotFound
from bot.engine.freezes import FreezeWindow
from bot.engine.model import (
    Deployment,
    LockRecord,
    Release,
    Step,
    VersionShare,
    Vote,
    WorkerVersion,
)
from bot.engine.reading import Health, LiveSplit, TargetStatus
from bot.engine.requests import Plan
from bot.engine.states import State
from bot.slack.blocks import answers, views
from bot.slack.blocks.audit_view import audit_page
from bot.slack.blocks.card import release_card
from bot.slack.blocks.common import clip
from bot.slack.blocks.home import home_view
from bot.slack.blocks.modals import reject_modal
from bot.slack.listeners.errors import answering
from bot.slack.render import render
from bot.slack.replies import Caller

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
EVIL = "<!channel> <@U0EVIL> <https://evil.example|x> &"
SHOWN = "&lt;!channel&gt; &lt;@U0EVIL&gt; &lt;https://evil.example|x&gt; &amp;"
RAW = ("<!channel>", "<@U0EVIL>", "<https://evil.example|x>")
VID = "1a2b3c4d-0000-4000-8000-000000000000"
OLD = "9f8e7d6c-0000-4000-8000-000000000000"


def mrkdwn(value: Any, found: list[str] | None = None) -> list[str]:
    """Every text Slack reads as mrkdwn (plain_text objects are left out)."""
    found = [] if found is None else found
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            return found
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                found.append(item)
            else:
                mrkdwn(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            mrkdwn(item, found)
    elif isinstance(value, str):
        found.append(value)
    return found


def plain_texts(value: Any, found: list[str] | None = None) -> list[str]:
    found = [] if found is None else found
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            found.append(value["text"])
            return found
        for item in value.values():
            plain_texts(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            plain_texts(item, found)
    return found


def assert_escaped(value: Any) -> str:
    shown = "\n".join(mrkdwn(value))
    for raw in RAW:
        assert raw not in shown, raw
    assert re.findall(r"&(?!amp;|lt;|gt;)", shown) == [], shown
    assert "&amp;amp;" not in shown and "&amp;lt;" not in shown, "escaped twice"
    return shown


def release(state: State = State.AWAITING_APPROVAL, **changes: Any) -> Release:
    base = Release(
        service="tax-api",
        environment="staging",
        script="tax-api-staging",
        version_id=VID,
        requested_by="U0CAROL",
        policy="staging",
        state=state,
        version_tag=EVIL,
        version_message=EVIL,
        stable_version_id=OLD,
        reason=EVIL,
        outcome=EVIL,
        plan=(10, 100),
        current_step=0,
        approvals_required=1,
        id=1,
        created_at=NOW,
        finished_at=NOW + timedelta(minutes=5),
        steps=[Step(0, 10, gate={"summary": EVIL})],
    )
    return base.copy(**changes)


def live() -> LiveSplit:
    dep = Deployment(
        "dep-1",
        (VersionShare(VID, 100),),
        created_on=NOW,
        author_email=EVIL,
        source=EVIL,
        message=EVIL,
    )
    version = WorkerVersion(VID, tag=EVIL, message=EVIL, author_email=EVIL, created_on=NOW)
    return LiveSplit("tax-api", "staging", "tax-api-staging", dep, {VID: version})


def status(**changes: Any) -> TargetStatus:
    base = TargetStatus(
        "tax-api",
        "staging",
        live(),
        inflight=release(State.VERIFYING),
        pending=release(),
        lock=LockRecord("tax-api", "staging", EVIL, "U0ALICE", NOW),
        freeze=FreezeWindow(EVIL, NOW + timedelta(hours=2), EVIL),
        votes=[Vote(1, VID, "U0ALICE", True, NOW)],
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


# -- the card ----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(State))
def test_the_card_escapes_outside_values_in_every_state(state: State) -> None:
    text, blocks = release_card(release(state), [Vote(1, VID, "U0ALICE", True, NOW)])
    shown = assert_escaped([text, blocks])
    assert SHOWN in shown
    assert f"*Reason:* {SHOWN}" in shown
    assert f"*Outcome:* {SHOWN}" in shown
    assert "<@U0CAROL>" in shown  # the bot's own mention stays markup
    assert "<!date^" in shown  # and so does its date token


def test_the_card_header_and_buttons_show_what_was_typed() -> None:
    _, blocks = release_card(release())
    header, *_ = plain_texts(blocks)
    assert EVIL in header  # plain_text: Slack shows it as typed
    assert "&lt;" not in "".join(plain_texts(blocks))


def test_the_card_header_is_scrubbed_of_secrets() -> None:
    """A plain_text header is not escaped, but a token in a version's tag is still redacted."""
    _, blocks = release_card(release(version_tag="xoxb-123456-abcdefabcdef"))
    header, *_ = plain_texts(blocks)
    assert "xoxb-123456" not in header and "[redacted]" in header


def test_links_and_mentions_refuse_a_trailing_newline() -> None:
    from bot.slack.text import link, mention

    assert link("https://example.com/x\n", "lbl") == "lbl"
    assert not mention("U0ALICE\n").startswith("<@")


def test_a_mention_is_made_only_from_a_user_id() -> None:
    _, blocks = release_card(release(requested_by="<!channel>"))
    shown = assert_escaped(blocks)
    assert "*Requested by*\n&lt;!channel&gt;" in shown


# -- answers -----------------------------------------------------------------------------------


def test_status_overview_and_detail() -> None:
    assert SHOWN in assert_escaped(views.status_overview([status(), status(live=None, error=EVIL)]))
    text, blocks = views.status_detail(status())
    shown = assert_escaped([text, blocks])
    assert f"“{SHOWN}”" in shown  # the deployment message
    assert f"*Last gate:* R-1 {SHOWN}" in shown
    assert "<@U0ALICE>" in shown
    assert EVIL in plain_texts(views.status_detail(status(service=EVIL))[1])[0]


def test_history_versions_health() -> None:
    rows = [(release(State.FAILED), [Vote(1, VID, "U0ALICE", True, NOW)])]
    history = views.history_view(EVIL, EVIL, rows, True, "/release", 10)
    shown = assert_escaped(history)
    assert f"_{SHOWN}_" in shown  # the outcome
    assert plain_texts(history[1])[0] == f"History: {EVIL}/{EVIL}"
    assert "No releases of &lt;!channel&gt;" in assert_escaped(
        views.history_view(EVIL, None, [], False, "/release", 10)
    )

    versions = [WorkerVersion(VID, tag=EVIL, message=EVIL, author_email=EVIL, created_on=NOW)]
    shown = assert_escaped(views.versions_view("tax-api", "staging", versions, None, NOW))
    assert f"`1a2b3c4d` {SHOWN} — {SHOWN} · {SHOWN}" in shown

    health = Health(live(), timedelta(hours=1), {}, EVIL, (False, 500, EVIL))
    shown = assert_escaped(views.health_view(health))
    assert f"analytics unavailable: {SHOWN}" in shown
    assert f":x: {SHOWN}" in shown


def test_plan() -> None:
    report = Plan(
        release(State.REQUESTED, policy=EVIL),
        approvers=["U0ALICE", "S0GROUP", "<!here>"],
        deployers=None,
        may_deploy=EVIL,
        lock=LockRecord("tax-api", "staging", EVIL, "U0ALICE", NOW),
        freeze=FreezeWindow(EVIL, NOW + timedelta(hours=2), EVIL),
        holder=None,
        progression=EVIL,
    )
    text, blocks = answers.plan(report, "/release")
    shown = assert_escaped([text, blocks])
    assert f"*Version:* {SHOWN} `1a2b3c4d` — {SHOWN}" in shown
    assert "<@U0ALICE>, <!subteam^S0GROUP>, &lt;!here&gt;" in shown
    assert f":lock: *Locked* by <@U0ALICE>: {SHOWN}" in shown
    assert EVIL in plain_texts(blocks)[0]


class _Replier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def ephemeral(self, caller: Caller, text: str, blocks: Any = None) -> None:
        self.sent.append((text, blocks))


class _Runtime:
    def __init__(self) -> None:
        self.replier = _Replier()


def test_an_engine_error_is_answered_escaped() -> None:
    rt = _Runtime()

    async def work() -> None:
        raise NotFound(f"unknown service '{EVIL}'")

    asyncio.run(answering(rt, Caller("U0ALICE", "C0RELEASES"), work()))  # type: ignore[arg-type]
    ((text, blocks),) = rt.replier.sent
    assert f":warning: unknown service '{SHOWN}'" in assert_escaped([text, blocks])


# -- the App Home and the reject modal ---------------------------------------------------------


def test_home_escapes_rows_and_keeps_button_labels() -> None:
    view = home_view([status()], [release(State.VERIFYING)], [release()])
    shown = assert_escaped(view["blocks"])
    assert f"*R-1* tax-api {SHOWN} → staging" in shown
    assert "Approve" in plain_texts(view["blocks"])


def test_reject_modal_title_is_plain_text() -> None:
    modal = reject_modal("R-1 <&>", "1:v")
    assert modal["title"] == {"type": "plain_text", "text": "Reject R-1 <&>"}


# -- the audit view ----------------------------------------------------------------------------


def test_audit_page_escapes_records() -> None:
    record = {
        "seq": 7,
        "at": NOW,
        "release_key": "R-1",
        "service": EVIL,
        "environment": "staging",
        "action": "release.rejected",
        "before": "awaiting_approval",
        "after": "rejected",
        "detail": {"reason": "<!channel> & co"},
        "actor": "<@U0EVIL>",
    }
    text, blocks = audit_page([record], "/release", EVIL, older=NOW)
    shown = assert_escaped([text, blocks])
    assert "— &lt;!channel&gt; &amp; co" in shown
    assert shown.count("&lt;@U0EVIL&gt;") >= 2  # the actor and the service
    assert plain_texts(blocks)[0] == f"Audit trail · {EVIL}"
    assert assert_escaped(audit_page([], "/release", EVIL)).startswith("No audit records for &lt;")


# -- notices: escaped once, in render ----------------------------------------------------------


def test_notices_are_escaped_once() -> None:
    (post,) = render(n.Rejected(release(), "U0BOB", "<!channel> & co"))
    assert post.text == ":no_entry_sign: rejected by <@U0BOB>: &lt;!channel&gt; &amp; co"
    lock = render(n.LockChanged("tax-api", "production", "U0BOB", True, EVIL, False, None, None))
    assert SHOWN in assert_escaped([p.text for p in lock])


def test_a_cut_never_leaves_half_an_entity() -> None:
    for limit in range(2, 12):
        cut = clip("a" * 4 + "&amp;&lt;&gt;" * 3, limit)
        assert len(cut) <= limit
        assert re.findall(r"&(?!amp;|lt;|gt;)", cut) == [], cut
