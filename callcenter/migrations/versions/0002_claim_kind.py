"""who holds a claim on a recording is a column, not a parsed prefix

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("claim_kind", sa.String(length=20), nullable=True))
    # Claims held while upgrading keep working: the sweep's holder ids start with its kind.
    op.execute(
        "UPDATE recordings SET claim_kind = 'retention-sweep' "
        "WHERE claimed_by LIKE 'retention-sweep:%'"
    )
    op.execute(
        "UPDATE recordings SET claim_kind = 'ingest' "
        "WHERE claimed_by IS NOT NULL AND claim_kind IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("claim_kind")
