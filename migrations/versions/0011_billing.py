"""billing: the tables of network/billing/models.py; brand entries are append-only like the partners'

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import network.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_PG_APPEND_ONLY = """
CREATE FUNCTION brand_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'brand entries are append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql
"""
_PG_TRIGGER = """
CREATE TRIGGER brand_entries_append_only BEFORE UPDATE OR DELETE ON brand_entries
FOR EACH ROW EXECUTE FUNCTION brand_entries_append_only()
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER brand_entries_append_only BEFORE UPDATE ON brand_entries
BEGIN
    SELECT RAISE(ABORT, 'brand entries are append-only: UPDATE refused');
END
"""


def upgrade() -> None:
    with op.batch_alter_table("brands") as batch_op:
        batch_op.add_column(sa.Column("credit_hold", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "invoice_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_invoice_counters")),
    )
    op.create_table(
        "invoice_items",
        sa.Column("entry_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_invoice_items")),
    )
    with op.batch_alter_table("invoice_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoice_items_invoice_id"), ["invoice_id"], unique=False)

    op.create_table(
        "brand_billing",
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("billing_email", sa.String(length=255), nullable=True),
        sa.Column("billing_address", sa.Text(), nullable=True),
        sa.Column("credit_limit_minor", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("payment_terms_days >= 0", name=op.f("ck_brand_billing_terms")),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.id"], name=op.f("fk_brand_billing_brand_id_brands")),
        sa.PrimaryKeyConstraint("brand_id", name=op.f("pk_brand_billing")),
    )
    op.create_table(
        "brand_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=True),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("memo", sa.String(length=255), nullable=True),
        sa.Column("created_at", network.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind IN ('revenue', 'cpc', 'cpm') AND amount_minor > 0) OR (kind IN ('reversal', 'prepayment') AND amount_minor < 0) OR (kind = 'adjustment' AND amount_minor <> 0)",
            name=op.f("ck_brand_entries_sign"),
        ),
        sa.CheckConstraint(
            "kind IN ('revenue', 'reversal', 'cpc', 'cpm', 'adjustment', 'prepayment')",
            name=op.f("ck_brand_entries_kind"),
        ),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_brand_entries_quantity")),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.id"], name=op.f("fk_brand_entries_brand_id_brands")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brand_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_brand_entries_idempotency_key")),
    )
    with op.batch_alter_table("brand_entries", schema=None) as batch_op:
        batch_op.create_index("ix_brand_entries_brand_currency", ["brand_id", "currency", "id"], unique=False)

    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("period_end", network.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", network.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("issued_at", network.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("issued_by", sa.String(length=64), nullable=True),
        sa.Column("due_at", network.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("gateway", sa.String(length=16), nullable=True),
        sa.Column("paid_at", network.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_reference", sa.String(length=255), nullable=True),
        sa.Column("decided_at", network.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.Column("stripe_invoice_id", sa.String(length=255), nullable=True),
        sa.Column("hosted_url", sa.Text(), nullable=True),
        sa.Column("stripe_state", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("leased_until", network.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "(number IS NULL) = (status = 'draft' OR (status = 'void' AND issued_at IS NULL))",
            name=op.f("ck_invoices_number"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'open', 'paid', 'void', 'uncollectible')", name=op.f("ck_invoices_status")
        ),
        sa.CheckConstraint("amount_minor > 0 AND entry_count > 0", name=op.f("ck_invoices_amount")),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.id"], name=op.f("fk_invoices_brand_id_brands")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index("ix_invoices_brand", ["brand_id", "currency", "id"], unique=False)
        batch_op.create_index("ix_invoices_status", ["status", "id"], unique=False)
        batch_op.create_index("ix_invoices_stripe", ["stripe_invoice_id"], unique=False)

    op.create_table(
        "invoice_item_releases",
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("released_at", network.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["brand_entries.id"], name=op.f("fk_invoice_item_releases_entry_id_brand_entries")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_item_releases_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("invoice_id", "entry_id", name=op.f("pk_invoice_item_releases")),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("unit_minor", sa.BigInteger(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lines_invoice_id_invoices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
    )
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoice_lines_invoice_id"), ["invoice_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    with op.batch_alter_table("brands") as batch_op:
        batch_op.drop_column("credit_hold")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS brand_entries_append_only ON brand_entries")
        op.execute("DROP FUNCTION IF EXISTS brand_entries_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS brand_entries_append_only")
    with op.batch_alter_table("invoice_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_lines_invoice_id"))

    op.drop_table("invoice_lines")
    op.drop_table("invoice_item_releases")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_stripe")
        batch_op.drop_index("ix_invoices_status")
        batch_op.drop_index("ix_invoices_brand")

    op.drop_table("invoices")
    with op.batch_alter_table("brand_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_brand_entries_brand_currency")

    op.drop_table("brand_entries")
    op.drop_table("brand_billing")
    with op.batch_alter_table("invoice_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_items_invoice_id"))

    op.drop_table("invoice_items")
    op.drop_table("invoice_counters")
