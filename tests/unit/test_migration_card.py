"""Pending migrations and the lint's findings on the card, before approval, within Slack's
limits and escaped."""

from __future__ import annotations

import json

from bot.d1.lint import SqliteLinter
from bot.engine.migrations import MigrationFile, plan_of
from bot.engine.model import Release
from bot.engine.states import State
from bot.slack.blocks.card import release_card
from tests.unit.test_block_limits import check_blocks


def release_with(files: list[MigrationFile]) -> Release:
    findings = SqliteLinter().lint_all(files, ["CREATE TABLE users (id INTEGER, email TEXT)"])
    plan = plan_of("db-1", files, findings)
    return Release(
        service="tax-api",
        environment="production",
        script="tax-api",
        version_id="1a2b3c4d-0000-4000-8000-000000000001",
        requested_by="U0CAROL",
        policy="production",
        state=State.AWAITING_APPROVAL,
        approvals_required=2,
        migrations=plan.to_dict(),
        id=7,
    )


def test_the_card_shows_files_statements_and_findings_before_approval() -> None:
    release = release_with(
        [
            MigrationFile("0002_add_plan.sql", "ALTER TABLE users ADD COLUMN plan TEXT;"),
            MigrationFile("0003_drop_email.sql", "ALTER TABLE users DROP COLUMN email; -- <b>&"),
        ]
    )
    _, blocks = release_card(release)
    check_blocks(blocks)
    text = json.dumps(blocks)
    assert "2 file(s) to apply" in text
    assert "`0002_add_plan.sql`" in text and "ALTER TABLE users ADD COLUMN plan TEXT;" in text
    assert "*DROP COLUMN:* column users.email" in text
    assert "emergency policy" in text
    assert "&lt;b&gt;&amp;" in text and "<b>" not in text  # the file's text is escaped


def test_many_large_files_are_cut_to_slack_limits() -> None:
    huge = "INSERT INTO users (email) VALUES ('x');\n" * 2000
    files = [MigrationFile(f"{i:04d}_bulk.sql", huge) for i in range(1, 30)]
    _, blocks = release_card(release_with(files))
    check_blocks(blocks)
    text = json.dumps(blocks)
    assert "and 25 more file(s)" in text
    assert "/release migrations tax-api production" in text
