"""tracking: the tables of network/tracking/models.py

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import network.db
from network.clock import now_utc
from network.tracking import partitions

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("sub1", sa.String(length=255), nullable=True),
        sa.Column("sub2", sa.String(length=255), nullable=True),
        sa.Column("sub3", sa.String(length=255), nullable=True),
        sa.Column("sub4", sa.String(length=255), nullable=True),
        sa.Column("sub5", sa.String(length=255), nullable=True),
        sa.Column("deep_link", sa.Text(), nullable=True),
        sa.Column("created_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_links_offer_id_offers")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_links_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint("code", name=op.f("uq_links_code")),
    )
    op.create_index(op.f("ix_links_offer_id"), "links", ["offer_id"], unique=False)
    op.create_index(op.f("ix_links_partner_id"), "links", ["partner_id"], unique=False)
    op.create_table(
        "clicks",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("created_at", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sub1", sa.Text(), nullable=True),
        sa.Column("sub2", sa.Text(), nullable=True),
        sa.Column("sub3", sa.Text(), nullable=True),
        sa.Column("sub4", sa.Text(), nullable=True),
        sa.Column("sub5", sa.Text(), nullable=True),
        sa.Column("utm", sa.JSON(), nullable=True),
        sa.Column("referrer", sa.Text(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("visitor", sa.String(length=32), nullable=True),
        sa.Column("is_unique", sa.Boolean(), nullable=False),
        sa.Column("is_bot", sa.Boolean(), nullable=False),
        sa.Column("fallback_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name=op.f("fk_clicks_link_id_links")),
        sa.PrimaryKeyConstraint("id", "created_at", name=op.f("pk_clicks")),
        postgresql_partition_by="RANGE (created_at)",
    )
    op.create_index(op.f("ix_clicks_link_id"), "clicks", ["link_id"], unique=False)
    op.create_index("ix_clicks_offer_created", "clicks", ["offer_id", "created_at"], unique=False)
    op.create_index(
        "ix_clicks_ip_held",
        "clicks",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("ip IS NOT NULL"),
        sqlite_where=sa.text("ip IS NOT NULL"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # The partitions (network/tracking/partitions.py): the default one, so no click is ever
        # refused, and this month's and the next ones'; the daily job keeps making them.
        bind = op.get_bind()
        partitions.create_default(bind)
        for month in partitions.months_wanted(now_utc()):
            partitions.create_month(bind, month)
    op.create_table(
        "click_visitors",
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("visitor", sa.String(length=32), nullable=False),
        sa.Column("window_start", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("link_id", "visitor", name=op.f("pk_click_visitors")),
    )
    op.create_index(op.f("ix_click_visitors_window_start"), "click_visitors", ["window_start"], unique=False)
    op.create_table(
        "impression_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["link_id"], ["links.id"], name=op.f("fk_impression_counts_link_id_links")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_impression_counts")),
        sa.UniqueConstraint("link_id", "day", name=op.f("uq_impression_counts_link_id_day")),
    )
    op.create_index(op.f("ix_impression_counts_offer_id"), "impression_counts", ["offer_id"], unique=False)
    op.create_index(op.f("ix_impression_counts_partner_id"), "impression_counts", ["partner_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_impression_counts_partner_id"), table_name="impression_counts")
    op.drop_index(op.f("ix_impression_counts_offer_id"), table_name="impression_counts")
    op.drop_table("impression_counts")
    op.drop_index(op.f("ix_click_visitors_window_start"), table_name="click_visitors")
    op.drop_table("click_visitors")
    op.drop_index("ix_clicks_ip_held", table_name="clicks")
    op.drop_index("ix_clicks_offer_created", table_name="clicks")
    op.drop_index(op.f("ix_clicks_link_id"), table_name="clicks")
    op.drop_table("clicks")
    if op.get_bind().dialect.name == "postgresql":
        # The partitions went with the table; a partition detached and not yet dropped goes here.
        op.execute(f"DROP SCHEMA IF EXISTS {partitions.SCHEMA} CASCADE")
    op.drop_index(op.f("ix_links_partner_id"), table_name="links")
    op.drop_index(op.f("ix_links_offer_id"), table_name="links")
    op.drop_table("links")
