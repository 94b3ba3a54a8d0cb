"""rollups: the tables of network/rollups/models.py, and a mark for every hour already written

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import network.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SUMS = (
    "clicks", "unique_clicks", "pending", "approved", "rejected", "reversed", "sale_minor", "revenue_minor",
    "payout_minor",
)  # fmt: skip
#: The start of a row's UTC hour, in the form each database stores a UTCDateTime.
_HOUR = {
    "postgresql": "date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "sqlite": "strftime('%Y-%m-%d %H:00:00.000000', created_at)",
}


def _sums() -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS]


def _keys() -> list[sa.Column]:
    return [
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "rollup_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_marks")),
    )
    op.create_index("ix_rollup_marks_hour", "rollup_marks", ["hour"], unique=False)
    op.create_table(
        "rollup_details",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", network.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.SmallInteger(), nullable=False),
        *_keys(),
        *[sa.Column(f"sub{n}", sa.Text(), nullable=True) for n in range(1, 6)],
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        *_sums(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_details")),
    )
    op.create_index("ix_rollup_details_hour", "rollup_details", ["hour", "source"], unique=False)
    op.create_table(
        "rollup_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", network.db.UTCDateTime(timezone=True), nullable=False),
        *_keys(),
        *_sums(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_hours")),
    )
    op.create_index("ix_rollup_hours_hour", "rollup_hours", ["hour"], unique=False)
    # Rows written before rollups existed: every hour of them is marked, so the job rolls it up.
    hour = _HOUR[op.get_bind().dialect.name]
    for source, table in ((1, "clicks"), (2, "conversions")):
        op.execute(f"INSERT INTO rollup_marks (hour, source) SELECT DISTINCT {hour}, {source} FROM {table}")  # noqa: S608


def downgrade() -> None:
    op.drop_index("ix_rollup_hours_hour", table_name="rollup_hours")
    op.drop_table("rollup_hours")
    op.drop_index("ix_rollup_details_hour", table_name="rollup_details")
    op.drop_table("rollup_details")
    op.drop_index("ix_rollup_marks_hour", table_name="rollup_marks")
    op.drop_table("rollup_marks")
