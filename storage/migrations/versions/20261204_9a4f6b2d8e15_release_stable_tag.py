"""The tag of the version a release falls back to, so the card and the timeline show
"Stable v1.4.1 `259f4329`" rather than a bare id.

Revision ID: 9a4f6b2d8e15
Revises: 5c8d2e6f1a47
Create Date: 2026-12-04 17:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "9a4f6b2d8e15"
down_revision: str | Sequence[str] | None = "5c8d2e6f1a47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("stable_version_tag", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("stable_version_tag")
