from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

from notes.settings import database_url

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name)

engine = create_engine(database_url())
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
