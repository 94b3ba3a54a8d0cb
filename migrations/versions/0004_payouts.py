"""payouts: the tables of network/payouts/models.py

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import network.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Ledger entries are append-only: the database refuses an UPDATE (and, on PostgreSQL, a DELETE;
# SQLite keeps DELETE so that tests can empty their database between runs; TRUNCATE stays allowed).
_PG_APPEND_ONLY = """
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql
"""
_PG_TRIGGER = """
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are append-only: UPDATE refused');
END
"""


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"], unique=False)
    op.create_table(
        "job_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("period_key", sa.String(length=64), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_claims")),
        sa.UniqueConstraint("job_id", "period_key", name=op.f("uq_job_claims_job_id_period_key")),
    )
    op.create_table(
        "job_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("schedule", sa.String(length=255), nullable=False),
        sa.Column("declared_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_run_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_period", sa.String(length=64), nullable=True),
        sa.Column("last_success_ms", sa.Integer(), nullable=True),
        sa.Column("last_success_outcome", sa.Text(), nullable=True),
        sa.Column("last_failure_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_period", sa.String(length=64), nullable=True),
        sa.Column("last_failure_reason", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_status")),
        sa.UniqueConstraint("job_id", name=op.f("uq_job_status_job_id")),
    )
    op.create_table(
        "payout_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("gateway", sa.String(length=16), nullable=True),
        sa.Column("started_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("matured", sa.Integer(), nullable=False),
        sa.Column("built", sa.Integer(), nullable=False),
        sa.Column("paid", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.Integer(), nullable=False),
        sa.Column("export_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_runs")),
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("received_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_stripe_events_event_id")),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("created_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("approved_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=255), nullable=True),
        sa.Column("gateway", sa.String(length=16), nullable=True),
        sa.Column("destination", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=True),
        sa.Column("transfer_group", sa.String(length=64), nullable=True),
        sa.Column("key_first_used_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("leased_until", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("sent_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("paid_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("failure_reason", sa.String(length=300), nullable=True),
        sa.Column("failed_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reversed_at", network.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending_approval', 'on_hold', 'approved', 'processing', 'paid', 'failed', 'canceled', 'reversed')",
            name=op.f("ck_payouts_status"),
        ),
        sa.CheckConstraint("amount_minor > 0 AND entry_count > 0", name=op.f("ck_payouts_amount")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_payouts_attempts")),
        sa.ForeignKeyConstraint(["batch_id"], ["payout_runs.id"], name=op.f("fk_payouts_batch_id_payout_runs")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_payouts_partner_id_partners")),
        sa.ForeignKeyConstraint(["run_id"], ["payout_runs.id"], name=op.f("fk_payouts_run_id_payout_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payouts_idempotency_key")),
    )
    op.create_index("ix_payouts_partner", "payouts", ["partner_id", "id"], unique=False)
    op.create_index(op.f("ix_payouts_run_id"), "payouts", ["run_id"], unique=False)
    op.create_index("ix_payouts_reference", "payouts", ["reference"], unique=False)
    op.create_index("ix_payouts_status", "payouts", ["status", "id"], unique=False)
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=True),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("payout_id", sa.Integer(), nullable=True),
        sa.Column("memo", sa.String(length=255), nullable=True),
        sa.Column("created_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind IN ('commission', 'cpc', 'cpm', 'payout_reversal') AND amount_minor > 0)"
            " OR (kind IN ('reversal', 'clawback', 'payout') AND amount_minor < 0)"
            " OR (kind = 'adjustment' AND amount_minor <> 0)",
            name=op.f("ck_ledger_entries_sign"),
        ),
        sa.CheckConstraint(
            "kind IN ('commission', 'reversal', 'clawback', 'cpc', 'cpm', 'adjustment', 'payout', 'payout_reversal')",
            name=op.f("ck_ledger_entries_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["conversion_id"], ["conversions.id"], name=op.f("fk_ledger_entries_conversion_id_conversions")
        ),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_ledger_entries_offer_id_offers")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_ledger_entries_partner_id_partners")),
        sa.ForeignKeyConstraint(["payout_id"], ["payouts.id"], name=op.f("fk_ledger_entries_payout_id_payouts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_entries_idempotency_key")),
    )
    op.create_index(op.f("ix_ledger_entries_conversion_id"), "ledger_entries", ["conversion_id"], unique=False)
    op.create_index(
        "ix_ledger_entries_partner_currency", "ledger_entries", ["partner_id", "currency", "id"], unique=False
    )
    op.create_index(op.f("ix_ledger_entries_payout_id"), "ledger_entries", ["payout_id"], unique=False)
    op.create_table(
        "payout_items",
        sa.Column("entry_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payout_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", name=op.f("pk_payout_items")),
    )
    op.create_table(
        "payout_item_releases",
        sa.Column("payout_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("released_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["ledger_entries.id"], name=op.f("fk_payout_item_releases_entry_id_ledger_entries")
        ),
        sa.ForeignKeyConstraint(["payout_id"], ["payouts.id"], name=op.f("fk_payout_item_releases_payout_id_payouts")),
        sa.PrimaryKeyConstraint("payout_id", "entry_id", name=op.f("pk_payout_item_releases")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_entries_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_append_only")
    op.drop_table("payout_item_releases")
    op.drop_table("payout_items")
    op.drop_index(op.f("ix_ledger_entries_payout_id"), table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_partner_currency", table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_conversion_id"), table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index("ix_payouts_status", table_name="payouts")
    op.drop_index("ix_payouts_reference", table_name="payouts")
    op.drop_index(op.f("ix_payouts_run_id"), table_name="payouts")
    op.drop_index("ix_payouts_partner", table_name="payouts")
    op.drop_table("payouts")
    op.drop_table("stripe_events")
    op.drop_table("payout_runs")
    op.drop_table("job_status")
    op.drop_table("job_claims")
    op.drop_index("ix_audit_log_object", table_name="audit_log")
    op.drop_table("audit_log")
