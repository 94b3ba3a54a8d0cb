"""rollup cubes: rollup_hours by cube, the daily cubes, and a mark for every day already rolled up

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import network.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SUMS = (
    "clicks", "unique_clicks", "pending", "approved", "rejected", "reversed", "sale_minor", "revenue_minor",
    "payout_minor",
)  # fmt: skip
#: The UTC day of a rollup hour, in the form each database stores a Date.
_DAY = {"postgresql": "CAST(hour AT TIME ZONE 'UTC' AS date)", "sqlite": "date(hour)"}


#: The narrower cubes' columns besides offer, partner, brand and currency (network/rollups/models.py).
_CUBES = {
    1: ("offer_id", "partner_id", "brand_id", "currency"),
    2: ("partner_id", "brand_id", "currency", "sub1", "country"),
}


def _hour_columns() -> list[sa.Column]:
    return [
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("sub1", sa.Text(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
    ]


def upgrade() -> None:
    # rollup_hours by cube: made anew from the details it summed (raw rows past retention may be gone).
    op.drop_index("ix_rollup_hours_hour", table_name="rollup_hours")
    op.drop_table("rollup_hours")
    op.create_table(
        "rollup_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cube", sa.SmallInteger(), nullable=False),
        sa.Column("hour", network.db.UTCDateTime(timezone=True), nullable=False),
        *_hour_columns(),
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS],
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_hours")),
    )
    op.create_index("ix_rollup_hours_cube_hour", "rollup_hours", ["cube", "hour"], unique=False)
    sums = ", ".join(_SUMS)
    summed = ", ".join(f"sum({name})" for name in _SUMS)
    for cube, keys in _CUBES.items():
        names = ", ".join(keys)
        op.execute(
            f"INSERT INTO rollup_hours (cube, hour, {names}, {sums}) "  # noqa: S608
            f"SELECT {cube}, hour, {names}, {summed} FROM rollup_details GROUP BY hour, {names}"
        )
    op.create_table(
        "rollup_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cube", sa.SmallInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=True),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *[sa.Column(f"sub{n}", sa.Text(), nullable=True) for n in range(1, 6)],
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("device", sa.String(length=16), nullable=True),
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS],
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_days")),
    )
    op.create_index("ix_rollup_days_cube_day", "rollup_days", ["cube", "day"], unique=False)
    op.create_table(
        "rollup_day_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_day_marks")),
    )
    op.create_index("ix_rollup_day_marks_day", "rollup_day_marks", ["day"], unique=False)
    # Days rolled up before daily rollups existed: marked, so the job builds them.
    day = _DAY[op.get_bind().dialect.name]
    op.execute(f"INSERT INTO rollup_day_marks (day) SELECT DISTINCT {day} FROM rollup_hours")  # noqa: S608


def downgrade() -> None:
    op.drop_index("ix_rollup_day_marks_day", table_name="rollup_day_marks")
    op.drop_table("rollup_day_marks")
    op.drop_index("ix_rollup_days_cube_day", table_name="rollup_days")
    op.drop_table("rollup_days")
    op.drop_index("ix_rollup_hours_cube_hour", table_name="rollup_hours")
    op.drop_table("rollup_hours")
    op.create_table(
        "rollup_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", network.db.UTCDateTime(timezone=True), nullable=False),
        *[sa.Column(name, sa.Integer(), nullable=False) for name in ("offer_id", "partner_id", "brand_id")],
        sa.Column("currency", sa.String(length=3), nullable=False),
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in _SUMS],
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_hours")),
    )
    op.create_index("ix_rollup_hours_hour", "rollup_hours", ["hour"], unique=False)
    keys = "offer_id, partner_id, brand_id, currency"
    summed = ", ".join(f"sum({name})" for name in _SUMS)
    op.execute(
        f"INSERT INTO rollup_hours (hour, {keys}, {', '.join(_SUMS)}) "  # noqa: S608
        f"SELECT hour, {keys}, {summed} FROM rollup_details GROUP BY hour, {keys}"
    )
