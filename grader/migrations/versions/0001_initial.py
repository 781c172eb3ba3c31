"""The schema before migrations existed: rubric versions, results, batch jobs and their chunks.

Stores created by earlier releases (``create_all``, no ``alembic_version``) already hold these
tables; they are left as they are and the store is stamped at this revision.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "rubric_versions" not in existing:
        op.create_table(
            "rubric_versions",
            sa.Column("rubric_id", sa.String(80), primary_key=True),
            sa.Column("version", sa.Integer, primary_key=True),
            sa.Column("content_hash", sa.String(32), nullable=False),
            sa.Column("body", sa.JSON, nullable=False),
            sa.Column("deleted", sa.Boolean, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "results" not in existing:
        op.create_table(
            "results",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("rubric_id", sa.String(80), nullable=False),
            sa.Column("rubric_version", sa.Integer, nullable=False),
            sa.Column("answer", sa.Text, nullable=False),
            sa.Column("body", sa.JSON, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
        op.create_index("ix_results_rubric_id", "results", ["rubric_id"])
    if "batch_jobs" not in existing:
        op.create_table(
            "batch_jobs",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("source", sa.String(16), nullable=False),
            sa.Column("input_path", sa.Text, nullable=False),
            sa.Column("output_path", sa.Text, nullable=False),
            sa.Column("input_identity", sa.String(64), nullable=True),
            sa.Column("fingerprint", sa.JSON, nullable=False),
            sa.Column("fingerprint_hash", sa.String(32), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("rows_total", sa.Integer, nullable=True),
            sa.Column("rows_done", sa.Integer, nullable=False),
            sa.Column("chunks_done", sa.Integer, nullable=False),
            sa.Column("output_position", sa.Integer, nullable=False),
            sa.Column("error", sa.Text, nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        )
        op.create_index("ix_batch_jobs_source", "batch_jobs", ["source"])
        op.create_index("ix_batch_jobs_state", "batch_jobs", ["state"])
    if "batch_job_chunks" not in existing:
        op.create_table(
            "batch_job_chunks",
            sa.Column("job_id", sa.String(64), sa.ForeignKey("batch_jobs.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("index", sa.Integer, primary_key=True),
            sa.Column("rows_end", sa.Integer, nullable=False),
            sa.Column("output_position", sa.Integer, nullable=False),
            sa.Column("graded", sa.Integer, nullable=False),
            sa.Column("errors", sa.Integer, nullable=False),
            sa.Column("score_sums", sa.JSON, nullable=False),
            sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        )


def downgrade() -> None:
    for table in ("batch_job_chunks", "batch_jobs", "results", "rubric_versions"):
        op.drop_table(table)
