"""Who ended a release (rejected, cancelled, rolled back on request), apart from its outcome
text, so the outcome holds plain words and the person is rendered where it is shown.

Revision ID: d41e7a90c2b1
Revises: c3d9e1f0a7b2
Create Date: 2026-12-03 09:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d41e7a90c2b1"
down_revision: str | Sequence[str] | None = "c3d9e1f0a7b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("ended_by", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("ended_by")
