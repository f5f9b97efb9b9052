"""what callers hear: per-line recording and survey switches; recorded and survey per call

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lines", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("record", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("survey", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recorded", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("survey", sa.Integer(), nullable=True))
    # Until now every call that heard the notice was dialled with recording on.
    op.execute("UPDATE calls SET recorded = (notice IS NOT NULL)")


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("survey")
        batch_op.drop_column("recorded")
    with op.batch_alter_table("lines", schema=None) as batch_op:
        batch_op.drop_column("survey")
        batch_op.drop_column("record")
