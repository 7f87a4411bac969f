"""add items.done

Expand-only (a new column with a default), so the release still serving while
this runs keeps working against the migrated schema.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("done", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("done")
