"""Where a release's version came from (Workers Builds or its annotations) and its
pre-deploy checks as last read, and the environment's last known good when it was asked
for, on the release.

Revision ID: 4c8e2d7a1f93
Revises: b7a3c5e19d02
Create Date: 2026-12-04 06:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "4c8e2d7a1f93"
down_revision: str | Sequence[str] | None = "b7a3c5e19d02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("source", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("checks", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("last_good", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("last_good")
        batch.drop_column("checks")
        batch.drop_column("source")
