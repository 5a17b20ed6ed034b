"""Schema, migrations and connections: the migrations build exactly the models, upgrading is
idempotent, readiness is reported honestly, an unreachable database is one clear line, and
SQLite is set up for several writers."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from storage.db import (
    StorageUnavailable,
    async_url,
    create_engine,
    head_revisions,
    nothing_matches,
    ping,
    reading,
    schema_is_current,
    sync_url,
    upgrade,
    writing,
)
from storage.tables import timers

pytest_plugins = ["tests.fixtures.db"]


def _schema_diff(url: str) -> list[object]:
    engine = sa.create_engine(sync_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_models(db_url: str):
    assert _schema_diff(db_url) == []


def test_upgrade_is_idempotent(db_url: str):
    upgrade(db_url)
    upgrade(db_url)
    assert _schema_diff(db_url) == []


async def test_schema_is_current_only_after_upgrade(empty_db_url: str):
    engine = create_engine(empty_db_url)
    try:
        assert await schema_is_current(engine) is False
        upgrade(empty_db_url)
        assert await schema_is_current(engine) is True
        assert len(head_revisions()) == 1
    finally:
        await engine.dispose()


async def test_an_unreachable_postgres_is_one_line_without_the_password():
    url = "postgresql+psycopg://releasebot:s3cr3t-pw@127.0.0.1:1/releasebot"
    engine = create_engine(url)
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await ping(engine)
        assert await schema_is_current(engine) is False
    finally:
        await engine.dispose()
    message = str(caught.value)
    assert message.startswith("database unavailable (PostgreSQL at 127.0.0.1:1/releasebot): ")
    assert "s3cr3t" not in message and "\n" not in message
    with pytest.raises(StorageUnavailable, match=re.escape("at 127.0.0.1:1/releasebot")) as up:
        upgrade(url)
    assert "s3cr3t" not in str(up.value)


def test_an_unusable_sqlite_path_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker}/releasebot.db"
    with pytest.raises(StorageUnavailable, match=re.escape(f"SQLite at {blocker}/releasebot.db")):
        upgrade(url)
    with pytest.raises(StorageUnavailable):
        create_engine(url)


async def test_ping_answers(engine: AsyncEngine):
    await ping(engine)


@pytest.mark.postgres
async def test_pooled_connections_survive_a_postgres_restart(postgres_url: str):
    upgrade(postgres_url)
    engine = create_engine(postgres_url)
    try:
        await ping(engine)  # leaves a connection in the pool
        # What a server restart does to every open connection:
        name = sa.make_url(postgres_url).database
        admin = sa.make_url(postgres_url).set(drivername="postgresql", database="test")
        with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as c:
            killed = c.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            ).fetchone()
        assert killed == (1,)
        assert await schema_is_current(engine) is True
    finally:
        await engine.dispose()


def test_urls():
    assert async_url("sqlite:///./releasebot.db") == "sqlite+aiosqlite:///./releasebot.db"
    assert sync_url("sqlite+aiosqlite:////var/lib/rb.db") == "sqlite:////var/lib/rb.db"
    for given in (
        "postgresql://u:p%40ss@db:5432/rb",
        "postgresql+psycopg://u:p%40ss@db:5432/rb",
        "postgres://u:p%40ss@db:5432/rb",
    ):
        assert async_url(given) == "postgresql+psycopg://u:p%40ss@db:5432/rb"
        assert sync_url(given) == "postgresql+psycopg://u:p%40ss@db:5432/rb"
    with pytest.raises(ValueError, match="unsupported DATABASE_URL"):
        async_url("mysql://u@db/rb")


async def test_times_come_back_aware_utc_and_naive_times_are_refused(engine: AsyncEngine):
    local = datetime.fromisoformat("2026-11-26T14:00:00.000007+02:00")
    async with writing(engine) as conn:
        await conn.execute(sa.insert(timers).values(kind="k", due_at=local))
    async with reading(engine) as conn:
        due = (await conn.execute(sa.select(timers.c.due_at))).scalar_one()
    assert due == local and due.tzinfo == UTC and due.microsecond == 7
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        async with writing(engine) as conn:
            await conn.execute(sa.insert(timers).values(kind="k", due_at=datetime(2026, 1, 1)))


async def test_sqlite_writers_take_the_write_lock_at_begin(sqlite_url: str):
    upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        async with reading(engine) as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 10_000
            other.execute("BEGIN IMMEDIATE")  # a reader holds no write lock
            other.execute("ROLLBACK")
        async with writing(engine):
            # Nothing written yet, and still the lock is ours: no read-then-write race.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
        await engine.dispose()


async def test_sqlite_writers_in_one_process_queue_without_holding_connections(sqlite_url: str):
    upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    pool = engine.sync_engine.pool
    in_use: list[int] = []

    async def writer(n: int) -> None:
        async with writing(engine) as conn:
            in_use.append(pool.checkedout())  # type: ignore[attr-defined]
            await asyncio.sleep(0.005)  # a transaction that awaits between statements
            await conn.execute(sa.insert(timers).values(kind=f"k{n}", due_at=datetime.now(UTC)))
            async with reading(engine) as other:  # reading inside writing needs no write lock
                await other.execute(sa.select(timers.c.id).limit(1))

    await asyncio.gather(*(writer(n) for n in range(30)))
    try:
        async with reading(engine) as conn:
            written = (await conn.execute(sa.select(sa.func.count()).select_from(timers))).scalar()
        assert written == 30
        # Each writer found the file free and only its own connection out of the pool.
        assert in_use == [1] * 30
    finally:
        await engine.dispose()


async def test_pollers_look_before_they_claim(engine: AsyncEngine):
    due = sa.select(timers.c.id).where(timers.c.fired_at.is_(None))
    sqlite = engine.dialect.name == "sqlite"
    # Nothing stored: on SQLite the synchronous look says so; PostgreSQL always asks for real.
    assert nothing_matches(engine, due) is sqlite
    async with writing(engine) as conn:
        await conn.execute(sa.insert(timers).values(kind="k", due_at=datetime.now(UTC)))
    assert nothing_matches(engine, due) is False
    # A writer holding the file does not make the look wait, nor say "nothing".
    async with writing(engine) as conn:
        await conn.execute(sa.update(timers).values(kind="k2"))
        assert nothing_matches(engine, due) is False
        assert nothing_matches(engine, due.where(timers.c.kind == "none")) is sqlite
