"""What ships (the live version against the candidate: bindings, secrets, runtime
settings, Durable Object migration tag, commits), stored on the release for its card.

Revision ID: 9d3b6f0c2e71
Revises: 9a4f6b2d8e15
Create Date: 2026-12-04 17:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "9d3b6f0c2e71"
down_revision: str | Sequence[str] | None = "9a4f6b2d8e15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("diff", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("diff")
