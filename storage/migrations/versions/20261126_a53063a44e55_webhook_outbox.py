"""Outgoing webhooks: a durable outbox of release events, one row per event and webhook.

Revision ID: a53063a44e55
Revises: fbe5d7250d79
Create Date: 2026-11-26 22:25:23.063629+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401, RUF100  (autogenerate spells SQLModel strings sqlmodel.sql...)
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a53063a44e55"
down_revision: str | Sequence[str] | None = "fbe5d7250d79"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
    )
    for column in ("next_attempt_at", "release_id", "webhook"):
        op.create_index(
            op.f(f"ix_webhook_outbox_{column}"), "webhook_outbox", [column], unique=False
        )


def downgrade() -> None:
    # Dropping a table drops its indexes.
    op.drop_table("webhook_outbox")
