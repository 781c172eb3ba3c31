"""Human reviews beside stored results, and the result columns the review queue filters and orders by.

``results`` gains ``needs_review``, ``confidence`` and ``flags`` (copied out of the JSON body, so
the queue is one indexed SQL query on SQLite and PostgreSQL alike); existing rows are filled from
their bodies. ``reviews`` only ever gains rows: a result reviewed again keeps its earlier reviews.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BACKFILL_CHUNK = 1000


def upgrade() -> None:
    with op.batch_alter_table("results") as table:
        table.add_column(sa.Column("needs_review", sa.Boolean, nullable=False, server_default=sa.false()))
        table.add_column(sa.Column("confidence", sa.Float, nullable=False, server_default="1.0"))
        table.add_column(sa.Column("flags", sa.Text, nullable=False, server_default=""))
        table.create_index("ix_results_review_queue", ["needs_review", "confidence", "id"])
    _fill_from_bodies()
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("result_id", sa.String(36), sa.ForeignKey("results.id"), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("key_points", sa.JSON, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("reviewer", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reviews_result_id", "reviews", ["result_id"])


def _fill_from_bodies() -> None:
    results = sa.table(
        "results",
        sa.column("id", sa.String),
        sa.column("body", sa.JSON),
        sa.column("needs_review", sa.Boolean),
        sa.column("confidence", sa.Float),
        sa.column("flags", sa.Text),
    )
    conn = op.get_bind()
    last = ""
    while True:
        rows = conn.execute(
            sa.select(results.c.id, results.c.body).where(results.c.id > last).order_by(results.c.id).limit(BACKFILL_CHUNK)
        ).all()
        if not rows:
            return
        for result_id, body in rows:
            flags = body.get("flags") or []
            conn.execute(
                results.update()
                .where(results.c.id == result_id)
                .values(
                    needs_review=bool(body.get("needs_review")),
                    confidence=float(body.get("confidence", 1.0)),
                    flags="|" + "|".join(flags) + "|" if flags else "",
                )
            )
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_reviews_result_id", table_name="reviews")
    op.drop_table("reviews")
    with op.batch_alter_table("results") as table:
        table.drop_index("ix_results_review_queue")
        table.drop_column("flags")
        table.drop_column("confidence")
        table.drop_column("needs_review")
