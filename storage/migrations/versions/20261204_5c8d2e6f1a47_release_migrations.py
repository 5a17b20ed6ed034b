"""A deploy's D1 migrations (pending files, lint findings, what was applied), stored on the
release so the card shows them before approval and the migration stage applies exactly those.

Revision ID: 5c8d2e6f1a47
Revises: 4c8e2d7a1f93
Create Date: 2026-12-04 06:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5c8d2e6f1a47"
down_revision: str | Sequence[str] | None = "4c8e2d7a1f93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("migrations", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("migrations")
