"""reasons beside the retention log (audit_notes) and the history of verifications

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import callcenter.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_notes",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("created_at", callcenter.db.UTCDateTime(), nullable=False),
        sa.Column("redacted_at", callcenter.db.UTCDateTime(), nullable=True),
        sa.Column("redacted_by", sa.String(length=64), nullable=True),
        sa.Column("redaction_reason", sa.Text(), nullable=True),
    )
    op.create_table(
        "verification_runs",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("at", callcenter.db.UTCDateTime(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("sample", sa.Integer(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("head", sa.String(length=90), nullable=True),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("problems", callcenter.db.JSONText(), nullable=False),
    )
    op.create_index("ix_verification_runs_at", "verification_runs", ["at"])


def downgrade() -> None:
    op.drop_index("ix_verification_runs_at", table_name="verification_runs")
    op.drop_table("verification_runs")
    op.drop_table("audit_notes")
