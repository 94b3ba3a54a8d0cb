"""deliveries: the tables of network/deliveries/models.py

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import network.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "postback_disables",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("url_hash", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("disabled_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_postback_disables_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postback_disables")),
        sa.UniqueConstraint(
            "partner_id", "target", "url_hash", name=op.f("uq_postback_disables_partner_id_target_url_hash")
        ),
    )
    op.create_table(
        "offer_postbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("created_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("method IN ('get', 'post')", name=op.f("ck_offer_postbacks_method")),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_offer_postbacks_offer_id_offers")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_offer_postbacks_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_postbacks")),
        sa.UniqueConstraint("partner_id", "offer_id", name=op.f("uq_offer_postbacks_partner_id_offer_id")),
    )
    op.create_index(op.f("ix_offer_postbacks_offer_id"), "offer_postbacks", ["offer_id"], unique=False)
    op.create_table(
        "postback_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("webhook_id", sa.String(length=40), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("old_status", sa.String(length=16), nullable=True),
        sa.Column("new_status", sa.String(length=16), nullable=False),
        sa.Column("event_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("macros", sa.JSON(), nullable=False),
        sa.Column("subs_from_click", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("leased_until", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'dead')", name=op.f("ck_postback_deliveries_status")
        ),
        sa.CheckConstraint("attempts >= 0 AND max_attempts >= 0", name=op.f("ck_postback_deliveries_attempts")),
        sa.ForeignKeyConstraint(
            ["conversion_id"], ["conversions.id"], name=op.f("fk_postback_deliveries_conversion_id_conversions")
        ),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_postback_deliveries_offer_id_offers")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_postback_deliveries_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postback_deliveries")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_postback_deliveries_dedupe_key")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_postback_deliveries_webhook_id")),
    )
    op.create_index(
        op.f("ix_postback_deliveries_conversion_id"), "postback_deliveries", ["conversion_id"], unique=False
    )
    op.create_index("ix_postback_deliveries_due", "postback_deliveries", ["status", "next_attempt_at"], unique=False)
    op.create_index("ix_postback_deliveries_partner", "postback_deliveries", ["partner_id", "id"], unique=False)
    op.create_table(
        "postback_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("address", sa.String(length=45), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("recorded", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["postback_deliveries.id"],
            name=op.f("fk_postback_attempts_delivery_id_postback_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postback_attempts")),
    )
    op.create_index(op.f("ix_postback_attempts_delivery_id"), "postback_attempts", ["delivery_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_postback_attempts_delivery_id"), table_name="postback_attempts")
    op.drop_table("postback_attempts")
    op.drop_index("ix_postback_deliveries_partner", table_name="postback_deliveries")
    op.drop_index("ix_postback_deliveries_due", table_name="postback_deliveries")
    op.drop_index(op.f("ix_postback_deliveries_conversion_id"), table_name="postback_deliveries")
    op.drop_table("postback_deliveries")
    op.drop_index(op.f("ix_offer_postbacks_offer_id"), table_name="offer_postbacks")
    op.drop_table("offer_postbacks")
    op.drop_table("postback_disables")
