"""The channel index holds whole segment rows; each coverage day keeps its central span.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

A frozen snapshot like the others. ``ix_segments_channel_span`` is rebuilt with every column of
``segments`` after its four keys: a channel's rows, scattered over the table (a hub writes every
channel's minute together), lie together in it, and the channel-day and coverage queries become
index-only scans. ``coverage_days`` gains ``first_us`` and ``last_us``, filled here from the
segments in the central store (one correlated aggregate per day over the new index).
On a catalog of millions of segments this migration takes minutes (the index is rebuilt).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DAY_US = 86_400_000_000
_MAX_SEGMENT_US = 3_600_000_000

_COLUMNS = [
    "device_id",
    "channel",
    "start_us",
    "end_us",
    "id",
    "duration_us",
    "bytes",
    "sha256",
    "video_codec",
    "audio_codec",
    "audio_source_codec",
    "container",
    "local_path",
    "storage_key",
    "sync_state",
    "synced_at_us",
    "sync_failures",
    "sync_error",
    "source",
    "backfill_source",
    "created_at_us",
    "central_deleted_at_us",
]

_CENTRAL_OF_DAY = f"""
FROM segments AS s
WHERE s.device_id = coverage_days.device_id AND s.channel = coverage_days.channel
  AND s.start_us >= coverage_days.day_us - {_MAX_SEGMENT_US}
  AND s.start_us < coverage_days.day_us + {_DAY_US} AND s.end_us > coverage_days.day_us
  AND s.sync_state = 'synced' AND s.central_deleted_at_us IS NULL
"""


def fill_spans(dialect: str) -> str:
    """The statement that sets every day's ``first_us`` and ``last_us`` from the central segments."""
    # Two-argument max/min are SQLite's GREATEST/LEAST.
    greatest, least = ("max", "min") if dialect == "sqlite" else ("GREATEST", "LEAST")
    return (
        f"UPDATE coverage_days SET "
        f"first_us = (SELECT {greatest}(MIN(s.start_us), coverage_days.day_us) {_CENTRAL_OF_DAY}), "
        f"last_us = (SELECT {least}(MAX(s.end_us), coverage_days.day_us + {_DAY_US}) {_CENTRAL_OF_DAY}) "
        f"WHERE segments > 0"
    )


def upgrade() -> None:
    # The index holds the error too: an entry must stay within PostgreSQL's limit (at most 250
    # characters are at most 1,000 bytes; the catalog now keeps at most 1,000 bytes of it).
    op.execute("UPDATE segments SET sync_error = substr(sync_error, 1, 250) WHERE length(sync_error) > 250")
    op.drop_index("ix_segments_channel_span", "segments")
    op.create_index("ix_segments_channel_span", "segments", _COLUMNS)
    with op.batch_alter_table("coverage_days") as batch:
        batch.add_column(sa.Column("first_us", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("last_us", sa.BigInteger(), nullable=True))
    op.execute(fill_spans(op.get_bind().dialect.name))


def downgrade() -> None:
    with op.batch_alter_table("coverage_days") as batch:
        batch.drop_column("last_us")
        batch.drop_column("first_us")
    op.drop_index("ix_segments_channel_span", "segments")
    op.create_index("ix_segments_channel_span", "segments", ["device_id", "channel", "start_us", "end_us"])
