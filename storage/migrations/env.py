"""Alembic environment for the release bot's schema.

``storage.db.upgrade()`` runs it with a connection already open (``config.attributes``);
a developer running ``alembic`` by hand with the top-level ``alembic.ini`` gets ``DATABASE_URL``.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.autogenerate.api import AutogenContext
from alembic.operations.ops import MigrationScript
from sqlmodel import SQLModel

import storage.tables  # registers every table on SQLModel.metadata
from storage.db import sync_url

config = context.config
target_metadata = SQLModel.metadata

# Only a hand-run alembic configures logging from the ini file; the bot configures its own.
if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from bot.settings import Settings  # the one place the environment is read

        url = Settings().database_url
    return sync_url(url)


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    # Migrations must not import application code that may change later: spell the UTC
    # datetime as the column type it really is.
    if type_ == "type" and isinstance(obj, storage.tables.UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _skip_empty(context_: Any, revision: Any, directives: list[MigrationScript]) -> None:
    # An autogenerate run that finds no difference writes no file.
    if config.cmd_opts is not None and getattr(config.cmd_opts, "autogenerate", False):
        script = directives[0]
        if script.upgrade_ops is not None and script.upgrade_ops.is_empty():
            directives[:] = []


def _options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "compare_type": True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        "render_as_batch": dialect_name == "sqlite",
        "render_item": _render_item,
        "process_revision_directives": _skip_empty,
    }


def run_offline() -> None:
    url = _database_url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **_options(sa.engine.make_url(url).get_backend_name()),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(_database_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
