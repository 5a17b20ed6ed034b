"""Slack outbox: audit-channel messages kept until Slack has taken them.

Revision ID: 8fe1b29e7f6d
Revises: a53063a44e55
Create Date: 2026-11-26 22:25:56.811364+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401, RUF100  (autogenerate spells SQLModel strings sqlmodel.sql...)
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "8fe1b29e7f6d"
down_revision: str | Sequence[str] | None = "a53063a44e55"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_outbox")),
    )
    op.create_index(
        op.f("ix_slack_outbox_next_attempt_at"), "slack_outbox", ["next_attempt_at"], unique=False
    )


def downgrade() -> None:
    # Dropping a table drops its indexes.
    op.drop_table("slack_outbox")
