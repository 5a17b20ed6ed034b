"""Index the releases of a target by state, so the queue and status stay fast with long
histories.

Revision ID: c3d9e1f0a7b2
Revises: 8fe1b29e7f6d
Create Date: 2026-11-26 23:45:00+00:00
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c3d9e1f0a7b2"
down_revision: str | Sequence[str] | None = "8fe1b29e7f6d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_releases_target_state",
        "releases",
        ["service", "environment", "state", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_releases_target_state", table_name="releases")
