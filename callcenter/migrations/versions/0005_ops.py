"""columns that hold every value a webhook accepts

A webhook accepts fields up to 256 characters (webhooks.security.MAX_FIELD_CHARS), and Twilio's
callers come as `sip:+37129111111@example.sip.twilio.com` or `client:anna` as well as E.164: a
40-character column refused them on PostgreSQL, and the caller heard the apology.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WIDER = {
    "calls": ("from_number", "to_number"),
    "callback_requests": ("phone",),
}


def upgrade() -> None:
    for table, columns in WIDER.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    existing_type=sa.String(length=40),
                    type_=sa.String(length=256),
                    existing_nullable=False,
                )


def downgrade() -> None:
    for table, columns in WIDER.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    existing_type=sa.String(length=256),
                    type_=sa.String(length=40),
                    existing_nullable=False,
                )
