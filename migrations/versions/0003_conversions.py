"""conversions: the tables of network/conversions/models.py

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import network.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("click_id", sa.String(length=64), nullable=False),
        sa.Column("clicked_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("txn_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("payout_minor", sa.BigInteger(), nullable=False),
        sa.Column("revenue_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("hold_until", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status_changed_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'reversed')", name=op.f("ck_conversions_status")
        ),
        sa.CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name=op.f("ck_conversions_amount")),
        sa.CheckConstraint("payout_minor >= 0 AND revenue_minor >= 0", name=op.f("ck_conversions_money")),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.id"], name=op.f("fk_conversions_brand_id_brands")),
        sa.ForeignKeyConstraint(["event_id"], ["offer_events.id"], name=op.f("fk_conversions_event_id_offer_events")),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name=op.f("fk_conversions_link_id_links")),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_conversions_offer_id_offers")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_conversions_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversions")),
        sa.UniqueConstraint("offer_id", "event_id", "txn_id", name=op.f("uq_conversions_offer_id_event_id_txn_id")),
    )
    op.create_index("ix_conversions_brand_txn", "conversions", ["brand_id", "txn_id"], unique=False)
    op.create_index("ix_conversions_offer_created", "conversions", ["offer_id", "created_at"], unique=False)
    op.create_index("ix_conversions_partner_created", "conversions", ["partner_id", "created_at"], unique=False)
    op.create_index("ix_conversions_status_hold", "conversions", ["status", "hold_until"], unique=False)
    op.create_index(
        "uq_conversions_click_event_no_txn",
        "conversions",
        ["click_id", "event_id"],
        unique=True,
        sqlite_where=sa.text("txn_id IS NULL"),
        postgresql_where=sa.text("txn_id IS NULL"),
    )
    op.create_table(
        "conversion_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=False),
        sa.Column("at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("old_status", sa.String(length=16), nullable=True),
        sa.Column("new_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversion_id"], ["conversions.id"], name=op.f("fk_conversion_history_conversion_id_conversions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_history")),
    )
    op.create_index(op.f("ix_conversion_history_conversion_id"), "conversion_history", ["conversion_id"], unique=False)
    op.create_table(
        "postback_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("click_id", sa.Text(), nullable=True),
        sa.Column("txn_id", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("duplicate", sa.Boolean(), nullable=False),
        sa.Column("remote_addr", sa.String(length=45), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postback_log")),
    )
    op.create_index("ix_postback_log_brand_received", "postback_log", ["brand_id", "received_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_postback_log_brand_received", table_name="postback_log")
    op.drop_table("postback_log")
    op.drop_index(op.f("ix_conversion_history_conversion_id"), table_name="conversion_history")
    op.drop_table("conversion_history")
    op.drop_index(
        "uq_conversions_click_event_no_txn",
        table_name="conversions",
        sqlite_where=sa.text("txn_id IS NULL"),
        postgresql_where=sa.text("txn_id IS NULL"),
    )
    op.drop_index("ix_conversions_status_hold", table_name="conversions")
    op.drop_index("ix_conversions_partner_created", table_name="conversions")
    op.drop_index("ix_conversions_offer_created", table_name="conversions")
    op.drop_index("ix_conversions_brand_txn", table_name="conversions")
    op.drop_table("conversions")
