"""Retention and scale-out: holds, the deletion audit, channel leases, central deletion time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

A frozen snapshot like 0001: tables spelled out, every constraint named.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _one_of(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name)


def upgrade() -> None:
    with op.batch_alter_table("segments") as batch:
        batch.add_column(sa.Column("central_deleted_at_us", sa.BigInteger(), nullable=True))
    op.create_table(
        "holds",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=True),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("released_at_us", sa.BigInteger(), nullable=True),
        sa.Column("released_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_holds"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_holds_device_id_devices"),
        sa.CheckConstraint("end_us > start_us", name="ck_holds_positive_span"),
        sa.CheckConstraint("reason <> ''", name="ck_holds_reason_given"),
        _one_of("kind", ["export", "incident", "manual"], "ck_holds_hold_kind"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_holds_device_start", "holds", ["device_id", "start_us"])
    op.create_index(
        "ix_holds_active",
        "holds",
        ["device_id"],
        sqlite_where=sa.text("released_at_us IS NULL"),
        postgresql_where=sa.text("released_at_us IS NULL"),
    )
    op.create_table(
        "deletions",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("segment_id", sa.BigInteger(), nullable=False),
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("deleted_at_us", sa.BigInteger(), nullable=False),
        sa.Column("deleted_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deletions"),
        _one_of("tier", ["local", "central"], "ck_deletions_storage_tier"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_deletions_channel_start", "deletions", ["device_id", "channel", "start_us"])
    op.create_index("ix_deletions_deleted_at", "deletions", ["deleted_at_us"])
    op.create_table(
        "leases",
        sa.Column("device_id", sa.String(100), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", "channel", name="pk_leases"),
        sa.ForeignKeyConstraint(
            ["device_id", "channel"],
            ["channels.device_id", "channels.channel"],
            name="fk_leases_device_id_channel_channels",
        ),
    )
    op.create_index("ix_leases_holder", "leases", ["holder"])
    op.create_index("ix_leases_expires", "leases", ["expires_at_us"])


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("deletions")
    op.drop_table("holds")
    with op.batch_alter_table("segments") as batch:
        batch.drop_column("central_deleted_at_us")
