"""The recording catalog: devices, channels, segments, gaps, device state history.

Revision ID: 0001
Revises:
Create Date: 2026-11-01

A migration is a frozen snapshot: it spells out its tables instead of importing the ORM classes,
which will change after it. Every constraint is named (see ``NAMING_CONVENTION`` in ``_schema``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite's rowid alias must be spelled INTEGER; PostgreSQL gets BIGINT.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _one_of(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("unit", sa.String(100), nullable=False),
        sa.Column("vendor", sa.String(50), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("serial", sa.String(100), nullable=True),
        sa.Column("firmware", sa.String(100), nullable=True),
        sa.Column("mac", sa.String(32), nullable=True),
        sa.Column("first_seen_us", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        _one_of("kind", ["camera", "nvr", "dvr", "encoder"], "ck_devices_device_kind"),
    )
    op.create_table(
        "channels",
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("audio", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "channel", name="pk_channels"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_channels_device_id_devices"),
        _one_of("kind", ["camera", "microphone"], "ck_channels_channel_kind"),
    )
    op.create_table(
        "segments",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("duration_us", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("video_codec", sa.String(32), nullable=True),
        sa.Column("audio_codec", sa.String(32), nullable=True),
        sa.Column("audio_source_codec", sa.String(32), nullable=True),
        sa.Column("container", sa.String(16), nullable=False),
        sa.Column("local_path", sa.Text(), nullable=True),
        sa.Column("storage_key", sa.String(1024), nullable=True),
        sa.Column("sync_state", sa.String(16), nullable=False),
        sa.Column("synced_at_us", sa.BigInteger(), nullable=True),
        sa.Column("sync_failures", sa.Integer(), nullable=False),
        sa.Column("sync_error", sa.Text(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("backfill_source", sa.String(255), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
        sa.ForeignKeyConstraint(
            ["device_id", "channel"],
            ["channels.device_id", "channels.channel"],
            name="fk_segments_device_id_channel_channels",
        ),
        sa.CheckConstraint("end_us > start_us", name="ck_segments_positive_span"),
        sa.CheckConstraint("bytes >= 0", name="ck_segments_size"),
        _one_of("sync_state", ["pending", "uploading", "synced", "failed"], "ck_segments_sync_state"),
        _one_of("source", ["live", "backfill"], "ck_segments_segment_source"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_segments_channel_span", "segments", ["device_id", "channel", "start_us", "end_us"])
    op.create_index(
        "ix_segments_unsynced",
        "segments",
        ["start_us"],
        sqlite_where=sa.text("sync_state <> 'synced'"),
        postgresql_where=sa.text("sync_state <> 'synced'"),
    )
    op.create_index("uq_segments_storage_key", "segments", ["storage_key"], unique=True)
    op.create_table(
        "gaps",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=True),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("closed_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_gaps"),
        sa.ForeignKeyConstraint(
            ["device_id", "channel"],
            ["channels.device_id", "channels.channel"],
            name="fk_gaps_device_id_channel_channels",
        ),
        sa.CheckConstraint("end_us IS NULL OR end_us > start_us", name="ck_gaps_positive_span"),
        _one_of(
            "cause",
            ["unreachable", "auth", "stall", "stream_ended", "codec_change", "unsynced", "other"],
            "ck_gaps_gap_cause",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_gaps_channel_start", "gaps", ["device_id", "channel", "start_us"])
    op.create_index(
        "ix_gaps_open",
        "gaps",
        ["device_id", "channel"],
        sqlite_where=sa.text("end_us IS NULL"),
        postgresql_where=sa.text("end_us IS NULL"),
    )
    op.create_table(
        "device_states",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(50), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_states"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_device_states_device_id_devices"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_device_states_device_at", "device_states", ["device_id", "at_us"])


def downgrade() -> None:
    op.drop_table("device_states")
    op.drop_table("gaps")
    op.drop_table("segments")
    op.drop_table("channels")
    op.drop_table("devices")
