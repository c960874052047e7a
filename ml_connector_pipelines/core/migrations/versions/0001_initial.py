"""Initial schema: tenants, credentials, ledger, audit_events, inbox, cursors.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types: a migration must not change when tables.py changes later.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("product", sa.String(20), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("removed_at", Timestamp),
    )
    op.create_table(
        "credentials",
        sa.Column("tenant", sa.String(100), sa.ForeignKey("tenants.name"), primary_key=True),
        sa.Column("system", sa.String(50), primary_key=True),
        sa.Column("ciphertext", sa.Text, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_table(
        "ledger",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("flow", sa.String(100), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("target_id", sa.String(255)),
        sa.Column("content_hash", sa.String(64)),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("previous_status", sa.String(10)),
        sa.Column("run_id", sa.String(100)),
        sa.Column("reason", sa.Text),
        sa.Column("extra", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("claimed_at", Timestamp),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("tenant", "flow", "source_id", name="uq_ledger_record"),
    )
    op.create_index("ix_ledger_target", "ledger", ["tenant", "flow", "target_id"])
    op.create_index("ix_ledger_status", "ledger", ["tenant", "flow", "status"])
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("flow", sa.String(100), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("target_id", sa.String(255)),
        sa.Column("run_id", sa.String(100)),
        sa.Column("partition", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("details", sa.JSON),
    )
    op.create_index("ix_audit_record", "audit_events", ["tenant", "flow", "source_id"])
    op.create_index("ix_audit_run", "audit_events", ["run_id"])
    op.create_table(
        "inbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("processed_at", Timestamp),
        sa.Column("claimed_by", sa.String(100)),
        sa.Column("claimed_at", Timestamp),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("source", "tenant", "event_id", name="uq_inbox_event"),
    )
    op.create_index("ix_inbox_pending", "inbox", ["source", "processed_at"])
    op.create_table(
        "cursors",
        sa.Column("tenant", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    for table in ("cursors", "inbox", "audit_events", "ledger", "credentials", "tenants"):
        op.drop_table(table)
