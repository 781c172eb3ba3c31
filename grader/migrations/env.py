"""Alembic environment: runs on the connection ``grader.store.migrate`` hands it (or on ``sqlalchemy.url``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from grader import jobs  # noqa: F401 - registers the job tables on Base.metadata for autogenerate
from grader.store import Base

config = context.config
target_metadata = Base.metadata


def run(connection) -> None:
    # SQLite cannot ALTER most things in place: batch mode copies the table instead.
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=connection.dialect.name == "sqlite"
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:  # `alembic -x` style use with a URL in the config
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        run(conn)
