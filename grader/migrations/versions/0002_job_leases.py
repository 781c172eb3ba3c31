"""Job leases, so several server processes share one store's job queue without running a job twice.

A worker claims a job by setting ``owner`` and ``lease_until`` in one conditional UPDATE and
renews the lease while it grades; a job whose lease ran out (its worker died) is claimable again.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch_jobs") as table:
        table.add_column(sa.Column("owner", sa.String(64), nullable=True))
        table.add_column(sa.Column("lease_until", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_jobs") as table:
        table.drop_column("lease_until")
        table.drop_column("owner")
