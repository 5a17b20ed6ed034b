"""The audit chain is keyed: each record names the id of the HMAC key its hash was made with
(NULL for the plain SHA-256 records written before).

Revision ID: b7a3c5e19d02
Revises: e7f2c4a91b30
Create Date: 2026-12-03 22:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "b7a3c5e19d02"
down_revision: str | Sequence[str] | None = "e7f2c4a91b30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("key_id")
