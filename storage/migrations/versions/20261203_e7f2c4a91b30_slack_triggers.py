"""Slack trigger_ids already handled, so a replayed command or click is not run twice.

Revision ID: e7f2c4a91b30
Revises: d41e7a90c2b1
Create Date: 2026-12-03 18:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401, RUF100  (autogenerate spells SQLModel strings sqlmodel.sql...)
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "e7f2c4a91b30"
down_revision: str | Sequence[str] | None = "d41e7a90c2b1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slack_triggers",
        sa.Column("trigger_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("noted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("trigger_id", name=op.f("pk_slack_triggers")),
    )
    op.create_index(op.f("ix_slack_triggers_seen_at"), "slack_triggers", ["seen_at"], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes.
    op.drop_table("slack_triggers")
