"""fraud: per-offer attribution and hold flags, conversions' evidence, partners' addresses, first-click index

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import network.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ATTRIBUTABLE = "fallback_reason IS NULL AND NOT is_bot"


def upgrade() -> None:
    with op.batch_alter_table("offers") as batch:
        batch.add_column(sa.Column("attribution", sa.String(length=16), nullable=False, server_default="last_click"))
        batch.add_column(sa.Column("hold_flags", sa.JSON(), nullable=True))
    with op.batch_alter_table("conversions") as batch:
        batch.add_column(sa.Column("evidence", sa.JSON(), nullable=True))
    with op.batch_alter_table("click_visitors") as batch:
        batch.add_column(sa.Column("previous_start", network.db.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "partner_addresses",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("last_seen", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_partner_addresses_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("partner_id", "address", name=op.f("pk_partner_addresses")),
    )
    op.create_index(op.f("ix_partner_addresses_last_seen"), "partner_addresses", ["last_seen"], unique=False)
    # On PostgreSQL an index of the partitioned table is made on each partition, present and future.
    op.create_index(
        "ix_clicks_visitor",
        "clicks",
        ["visitor"],
        unique=False,
        postgresql_using="hash",
        postgresql_where=sa.text(_ATTRIBUTABLE),
        sqlite_where=sa.text(_ATTRIBUTABLE),
    )


def downgrade() -> None:
    op.drop_index("ix_clicks_visitor", table_name="clicks")
    op.drop_index(op.f("ix_partner_addresses_last_seen"), table_name="partner_addresses")
    op.drop_table("partner_addresses")
    with op.batch_alter_table("click_visitors") as batch:
        batch.drop_column("previous_start")
    with op.batch_alter_table("conversions") as batch:
        batch.drop_column("evidence")
    with op.batch_alter_table("offers") as batch:
        batch.drop_column("hold_flags")
        batch.drop_column("attribution")
