"""Alembic environment, driven by StateStore.migrate().

migrate() builds the alembic Config in code and passes an open connection (already holding the
migration lock) in config.attributes, so no alembic.ini is needed and the migrations work from
an installed package.
"""

from __future__ import annotations

from alembic import context

from ml_connector_pipelines.core.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
