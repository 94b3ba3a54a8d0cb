"""customers: bound customers, their recurring counts, coupon codes; how a conversion was attributed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import network.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("bound_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=True),
        sa.Column("moved_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.id"], name=op.f("fk_customers_brand_id_brands")),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name=op.f("fk_customers_link_id_links")),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_customers_offer_id_offers")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_customers_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("brand_id", "customer_id", name=op.f("uq_customers_brand_id_customer_id")),
    )
    op.create_index("ix_customers_partner", "customers", ["partner_id"], unique=False)
    op.create_index("ix_customers_offer", "customers", ["offer_id"], unique=False)
    op.create_table(
        "customer_counts",
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_customer_counts_used")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["offer_events.id"], name=op.f("fk_customer_counts_event_id_offer_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("brand_id", "customer_id", "event_id", name=op.f("pk_customer_counts")),
    )  # fmt: skip
    op.create_table(
        "coupons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("code_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.id"], name=op.f("fk_coupons_brand_id_brands")),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name=op.f("fk_coupons_link_id_links")),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_coupons_offer_id_offers")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_coupons_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("brand_id", "code_key", name=op.f("uq_coupons_brand_id_code_key")),
    )
    op.create_index("ix_coupons_partner", "coupons", ["partner_id"], unique=False)
    op.create_index("ix_coupons_offer", "coupons", ["offer_id"], unique=False)

    op.add_column("offers", sa.Column("coupon_rule", sa.String(length=8), server_default="click", nullable=False))
    op.add_column("offer_events", sa.Column("recurring_months", sa.Integer(), nullable=True))
    op.add_column("offer_events", sa.Column("recurring_conversions", sa.Integer(), nullable=True))
    # SQLite alters a column's nullability by copying the table (batch mode); PostgreSQL in place.
    with op.batch_alter_table("conversions") as batch:
        batch.alter_column("click_id", existing_type=sa.String(length=64), nullable=True)
        batch.alter_column("clicked_at", existing_type=network.db.UTCDateTime(timezone=True), nullable=True)
        batch.add_column(sa.Column("attributed_by", sa.String(length=16), server_default="click", nullable=False))
        batch.add_column(sa.Column("customer_id", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("coupon", sa.String(length=64), nullable=True))
        batch.create_check_constraint("attributed_by", "attributed_by IN ('click', 'customer', 'coupon')")
    op.create_index(
        "ix_conversions_brand_customer",
        "conversions",
        ["brand_id", "customer_id"],
        unique=False,
        sqlite_where=sa.text("customer_id IS NOT NULL"),
        postgresql_where=sa.text("customer_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_conversions_brand_customer", table_name="conversions")
    with op.batch_alter_table("conversions") as batch:
        batch.drop_constraint("attributed_by", type_="check")
        batch.drop_column("coupon")
        batch.drop_column("customer_id")
        batch.drop_column("attributed_by")
        batch.alter_column("clicked_at", existing_type=network.db.UTCDateTime(timezone=True), nullable=False)
        batch.alter_column("click_id", existing_type=sa.String(length=64), nullable=False)
    op.drop_column("offer_events", "recurring_conversions")
    op.drop_column("offer_events", "recurring_months")
    op.drop_column("offers", "coupon_rule")
    op.drop_index("ix_coupons_offer", table_name="coupons")
    op.drop_index("ix_coupons_partner", table_name="coupons")
    op.drop_table("coupons")
    op.drop_table("customer_counts")
    op.drop_index("ix_customers_offer", table_name="customers")
    op.drop_index("ix_customers_partner", table_name="customers")
    op.drop_table("customers")
