"""Central coverage per channel and UTC day; the retention engineer's partial indexes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

A frozen snapshot like 0001: tables spelled out, every constraint named. ``coverage_days`` is
filled here from the segments already in the central store (one ``INSERT … SELECT … GROUP BY``);
from then on the catalog keeps it in the transaction of every change of central presence.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DAY_US = 86_400_000_000

# A segment is at most one hour long (MAX_SEGMENT_DURATION): it touches one UTC day, or two.
# ``x - ((x % D) + D) % D`` is the floor to the day on both databases (their ``%`` truncates).
_BACKFILL = f"""
INSERT INTO coverage_days (device_id, channel, day_us, central_us, backfilled_us, segments)
SELECT device_id, channel, day_us, SUM(piece), SUM(CASE WHEN source = 'backfill' THEN piece ELSE 0 END),
       COUNT(*)
FROM (
    SELECT device_id, channel, source, day_us,
           (CASE WHEN end_us < day_us + {_DAY_US} THEN end_us ELSE day_us + {_DAY_US} END)
           - (CASE WHEN start_us > day_us THEN start_us ELSE day_us END) AS piece
    FROM (
        SELECT device_id, channel, source, start_us, end_us,
               start_us - ((start_us % {_DAY_US}) + {_DAY_US}) % {_DAY_US} AS day_us
        FROM segments WHERE sync_state = 'synced' AND central_deleted_at_us IS NULL
        UNION ALL
        SELECT device_id, channel, source, start_us, end_us,
               start_us - ((start_us % {_DAY_US}) + {_DAY_US}) % {_DAY_US} + {_DAY_US} AS day_us
        FROM segments WHERE sync_state = 'synced' AND central_deleted_at_us IS NULL
            AND end_us > start_us - ((start_us % {_DAY_US}) + {_DAY_US}) % {_DAY_US} + {_DAY_US}
    ) AS pieces
) AS clipped
GROUP BY device_id, channel, day_us
"""


def upgrade() -> None:
    op.create_index(
        "ix_segments_local",
        "segments",
        ["start_us", "id"],
        sqlite_where=sa.text("local_path IS NOT NULL"),
        postgresql_where=sa.text("local_path IS NOT NULL"),
    )
    central = sa.text("storage_key IS NOT NULL AND central_deleted_at_us IS NULL")
    op.create_index(
        "ix_segments_central", "segments", ["start_us", "id"], sqlite_where=central, postgresql_where=central
    )
    op.create_table(
        "coverage_days",
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("day_us", sa.BigInteger(), nullable=False),
        sa.Column("central_us", sa.BigInteger(), nullable=False),
        sa.Column("backfilled_us", sa.BigInteger(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "channel", "day_us", name="pk_coverage_days"),
        sa.ForeignKeyConstraint(
            ["device_id", "channel"],
            ["channels.device_id", "channels.channel"],
            name="fk_coverage_days_device_id_channel_channels",
        ),
    )
    op.execute(_BACKFILL)


def downgrade() -> None:
    op.drop_table("coverage_days")
    op.drop_index("ix_segments_central", "segments")
    op.drop_index("ix_segments_local", "segments")
