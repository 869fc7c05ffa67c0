"""Alembic environment: runs on the connection handed over by bot.storage.db.upgrade."""

from alembic import context

from bot.storage.models import SQLModel

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
