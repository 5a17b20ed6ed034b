"""Durable state for the release bot: SQLModel tables, repositories implementing the engine's
ports, the tamper-evident audit chain, and the Alembic migrations that create the schema.

One async code path serves SQLite (one replica, ``releasebot dev``) and PostgreSQL (several
replicas)::

    from storage.db import create_engine, upgrade
    from storage.repositories import SqlReleaseRepository

    upgrade(url)                      # schema to head (Alembic, synchronous)
    engine = create_engine(url)       # AsyncEngine
    repo = SqlReleaseRepository(engine)
"""
