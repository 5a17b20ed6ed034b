"""``/release audit`` in chat: privately, most recent first, a page at a time, and paging is
typing the command the footer gives."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.engine.model import AuditEntry
from bot.engine.states import State
from bot.slack.listeners import commands
from bot.slack.listeners.audit_command import audit
from commands import model as cmd
from storage.outbox import SqlOutbox
from tests.fixtures.bot import AUDIT, RELEASES, BotHarness

OLDER = re.compile(r"older: `/release (audit[^`]*)`")
NEWER = re.compile(r"newer: `/release (audit[^`]*)`")
SEQ = re.compile(r"^#(\d+) · ", re.M)


@pytest.fixture(autouse=True)
def _audit_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(commands.HANDLERS, cmd.Audit, audit)


def _ask(bot: BotHarness, text: str, user: str = "U0MALLORY") -> str:
    before = len(bot.ephemerals(user))
    assert bot.command(text, user=user).status_code == 200
    answers = bot.wait_for(
        lambda: len(bot.ephemerals(user)) > before and bot.ephemerals(user), what=text
    )
    return answers[-1].text


def test_the_trail_of_a_release_privately_newest_first(bot: BotHarness) -> None:
    bot.command("deploy tax-api v1.4.2 to staging")
    bot.wait_for(lambda: bot.release(1) and bot.release(1).state is State.SUCCEEDED, what="R-1")
    # Every audit record posted: the bot posts nothing more on its own for a while (the health
    # summary comes minutes later).
    bot.idle()
    outbox = SqlOutbox(bot.rt.db)
    bot.wait_for(
        lambda: (
            bot.server.call(bot.rt.audit_poster.retry_due()) >= 0
            and bot.server.call(outbox.count_unsent()) == 0
        ),
        what="every audit record posted",
    )
    posted = len(bot.slack.channel_messages(RELEASES)) + len(bot.slack.channel_messages(AUDIT))

    answer = _ask(bot, "audit tax-api")

    lines = [line for line in answer.splitlines() if SEQ.match(line)]
    actions = [
        "release.succeeded",
        "gate.passed",
        "release.step_deployed",
        "release.started",
        "release.auto_approved",
        "release.requested",
    ]
    assert len(lines) == len(actions)
    for line, action in zip(lines, actions, strict=True):
        assert action in line and "`R-1` tax-api/staging" in line
    assert "(verifying → succeeded)" in lines[0] and "releasebot" in lines[0]
    assert "<@U0CAROL>" in lines[-1]
    assert "older:" not in answer and "newer:" not in answer
    # Only the asker saw it.
    after = len(bot.slack.channel_messages(RELEASES)) + len(bot.slack.channel_messages(AUDIT))
    assert after == posted


def test_paging_back_through_a_long_trail_misses_nothing(bot: BotHarness) -> None:
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    entries = [
        AuditEntry(
            actor="U0ALICE",
            action="lock.set" if n % 2 else "lock.released",
            at=start + timedelta(minutes=n),
            service="tax-api" if n % 5 else "tax-web",
            environment="production",
            detail={"reason": f"note {n}"},
        )
        for n in range(57)
    ]
    # Two records at the very same moment, where a page boundary may fall.
    entries.append(AuditEntry("U0BOB", "freeze.set", entries[-1].at, environment="production"))
    entries.append(AuditEntry("U0BOB", "freeze.ended", entries[-1].at, environment="production"))
    bot.server.call(bot.rt.repo.append_audit(entries))
    tax_api = [n + 1 for n, e in enumerate(entries) if e.service == "tax-api"]

    seen: list[int] = []
    text = "audit tax-api"
    pages = 0
    while text:
        answer = _ask(bot, text)
        page = [int(s) for s in SEQ.findall(answer)]
        assert 0 < len(page) <= 20 and page == sorted(page, reverse=True)
        seen.extend(page)
        found = OLDER.search(answer)
        text = found.group(1) if found else ""
        pages += 1
        assert pages < 10
    assert sorted(set(seen)) == tax_api, "every tax-api record, and only those"
    assert pages == 3

    everything = _ask(bot, "audit")
    assert [int(s) for s in SEQ.findall(everything)] == list(range(59, 39, -1))
    assert "freeze.ended" in everything and "<@U0BOB>" in everything

    # A page that starts at a time shows what follows it, and says where the newer ones are.
    since = _ask(bot, "audit tax-api --since 2026-11-20T09:00")
    first = [int(s) for s in SEQ.findall(since)]
    assert first == sorted(tax_api[:20], reverse=True)
    newer = NEWER.search(since)
    assert newer is not None
    following = [int(s) for s in SEQ.findall(_ask(bot, newer.group(1)))]
    assert following[-1] == tax_api[20]


def test_mistakes_are_answered_privately(bot: BotHarness) -> None:
    assert "unknown service 'tax-ap'" in _ask(bot, "audit tax-ap")
    assert "No audit records for tax-web" in _ask(bot, "audit tax-web --since 2h")
