"""Alembic environment: migrations run on the connection haqq hands over."""

from __future__ import annotations

from alembic import context

from haqq.adapters.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - haqq always passes its connection
    raise RuntimeError("run migrations through 'haqq db upgrade'")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
