"""Engines, database URLs, schema migrations and health checks.

The application runs on SQLAlchemy's asyncio engine; Alembic runs synchronously. Operators
give one ``DATABASE_URL`` and this module derives both drivers from it::

    async_url("sqlite:///./releasebot.db")        # sqlite+aiosqlite:///./releasebot.db
    async_url("postgresql://u@db:5432/rb")         # postgresql+psycopg://u@db:5432/rb

    upgrade(url)                  # migrations to head; safe to run again, and from every replica
    engine = create_engine(url)   # AsyncEngine
    await ping(engine)            # StorageUnavailable("database unavailable (PostgreSQL at ...)")

Transactions go through :func:`reading` and :func:`writing`. On SQLite a writing transaction
starts with ``BEGIN IMMEDIATE``: it takes the database's write lock up front (waiting up to the
busy timeout), so two writers never both read "the latest" row and then collide, which is what
keeps the audit chain and the revision checks honest. Reading transactions start ``BEGIN
DEFERRED`` and never wait for a writer (WAL mode). Any other transaction on an engine made by
:func:`create_engine` (``engine.begin()``, ``engine.connect()``) counts as writing.

Within one process, SQLite writers also queue on one ``asyncio.Lock`` per engine before they
take a connection: SQLite's own busy handler makes a waiting writer sleep and poll (up to
100 ms a time), which under a burst of writers left most of them asleep while the file was
free; the lock hands the file over in order, at once, and keeps waiting writers from holding
pooled connections (docs/benchmarks.md, scheduler scale).

Pollers (the timer tick, the outboxes' retry jobs) ask :func:`nothing_matches` first: on SQLite
it answers "is there anything to claim?" synchronously on the event loop in ~70 µs, where any
transaction through aiosqlite costs ~2 ms of hand-offs to its thread — which an idle bot paid
four times a second, showing up in its ack latency (docs/benchmarks.md, ack latency).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, StaticPool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Date-prefixed migration file names sort in the order they were written (as in alembic.ini).
FILE_TEMPLATE = "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s"

# SQLite waits this long for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000

# Execution option that marks a connection's transactions as read-only (BEGIN DEFERRED on SQLite).
READ_ONLY = "storage_read_only"

# Serialises concurrent `upgrade()` calls from several replicas on one PostgreSQL database.
_MIGRATION_LOCK = 0x72625F6D6967  # "rb_mig"

# What a failed connection attempt looks like, whichever driver raised it.
_CONNECT_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError)


class StorageUnavailable(Exception):
    """The database cannot be reached. ``str()`` is one line naming the host or file (never a
    password), fit for a log line or a CLI error::

        database unavailable (PostgreSQL at 10.0.0.5:5432/releasebot): connection refused
    """

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"database unavailable ({where}): {reason}")
        self.where = where
        self.reason = reason


def describe(url: str | URL) -> str:
    """Where a URL points, without user or password: ``SQLite at ./releasebot.db``."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return f"SQLite at {u.database or ':memory:'}"
    port = f":{u.port}" if u.port else ""
    return f"PostgreSQL at {u.host or 'localhost'}{port}/{u.database or ''}"


def unavailable(url: str | URL, exc: BaseException) -> StorageUnavailable:
    """Map a driver's connection error onto :class:`StorageUnavailable` (first line only, with
    the URL's password scrubbed in case a driver echoes it)."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    reason = lines[0].strip() if lines else type(cause).__name__
    password = make_url(url).password
    if password:
        reason = reason.replace(str(password), "***")
    return StorageUnavailable(describe(url), reason)


def _backend(u: URL) -> str:
    name = u.get_backend_name()
    if name in ("postgresql", "postgres"):
        return "postgresql"
    if name == "sqlite":
        return "sqlite"
    raise ValueError(
        f"unsupported DATABASE_URL scheme {u.drivername!r}: use sqlite:///PATH "
        "or postgresql+psycopg://USER@HOST:PORT/DB"
    )


def async_url(url: str) -> str:
    """The URL with the asyncio driver: aiosqlite for SQLite, psycopg 3 for PostgreSQL
    (SQLAlchemy runs ``postgresql+psycopg`` asynchronously under an AsyncEngine)."""
    u = make_url(url)
    driver = "sqlite+aiosqlite" if _backend(u) == "sqlite" else "postgresql+psycopg"
    return u.set(drivername=driver).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The URL with a synchronous driver, for Alembic: pysqlite or psycopg 3."""
    u = make_url(url)
    driver = "sqlite" if _backend(u) == "sqlite" else "postgresql+psycopg"
    return u.set(drivername=driver).render_as_string(hide_password=False)


def _ensure_sqlite_parent(u: URL) -> None:
    database = u.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(describe(u), f"cannot create its folder: {exc}") from exc


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers proceed while one writer works; the setting persists in the file.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # The driver's own BEGIN is disabled (isolation_level=None); we choose the kind here.
    kind = "DEFERRED" if conn.get_execution_options().get(READ_ONLY) else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {kind}")


def create_engine(url: str) -> AsyncEngine:
    """An AsyncEngine for ``url`` (any form :func:`async_url` accepts).

    SQLite: the file's folder is created (``StorageUnavailable`` if it cannot be), WAL
    journal, 10 s busy timeout, foreign keys on, writing transactions ``BEGIN IMMEDIATE``.
    PostgreSQL: connections are pinged before use, so a restarted server costs one reconnect
    rather than an error.
    """
    u = make_url(async_url(url))
    if _backend(u) == "postgresql":
        return create_async_engine(u, pool_pre_ping=True, connect_args=_pg_connect_args(u))
    _ensure_sqlite_parent(u)
    # isolation_level=None stops sqlite3 from issuing its own (deferred) BEGIN before writes.
    engine = create_async_engine(u, connect_args={"isolation_level": None})
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


@asynccontextmanager
async def _connected(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    conn = engine.connect()
    try:
        await conn.start()
    except _CONNECT_ERRORS as exc:
        raise unavailable(engine.url, exc) from exc
    try:
        yield conn
    finally:
        await conn.close()


# One write lock per SQLite engine and event loop (an asyncio.Lock belongs to one loop).
_WRITE_LOCKS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[sa.Engine, asyncio.Lock]
] = weakref.WeakKeyDictionary()
# The engines whose write lock the current task holds: a nested writing() must not wait for it.
_HOLDING: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "storage_holding_write_lock", default=frozenset()
)


def _write_lock(engine: AsyncEngine) -> asyncio.Lock | None:
    sync_engine = engine.sync_engine
    if sync_engine.dialect.name != "sqlite" or id(sync_engine) in _HOLDING.get():
        return None
    per_loop = _WRITE_LOCKS.setdefault(asyncio.get_running_loop(), weakref.WeakKeyDictionary())
    lock = per_loop.get(sync_engine)
    if lock is None:
        lock = per_loop[sync_engine] = asyncio.Lock()
    return lock


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction that may write; commits on success, rolls back on any exception.

    Raises :class:`StorageUnavailable` when no connection can be made.
    """
    lock = _write_lock(engine)
    async with AsyncExitStack() as stack:
        if lock is not None:
            await stack.enter_async_context(lock)
            held = _HOLDING.set(_HOLDING.get() | {id(engine.sync_engine)})
            stack.callback(_HOLDING.reset, held)
        conn = await stack.enter_async_context(_connected(engine))
        await stack.enter_async_context(conn.begin())
        yield conn


# SQLite only: a synchronous engine on the same file per AsyncEngine, for nothing_matches().
_PEEKERS: weakref.WeakKeyDictionary[sa.Engine, sa.Engine] = weakref.WeakKeyDictionary()


def _peeker(engine: AsyncEngine) -> sa.Engine | None:
    sync_engine = engine.sync_engine
    if sync_engine.dialect.name != "sqlite" or not _is_file(sync_engine.url):
        return None  # an in-memory database is private to its one connection
    peeker = _PEEKERS.get(sync_engine)
    if peeker is None:
        url = sync_engine.url.set(drivername="sqlite")
        # One connection, reused; never waits for a lock (timeout 0), never writes.
        peeker = sa.create_engine(
            url, poolclass=StaticPool, connect_args={"timeout": 0, "check_same_thread": False}
        )
        event.listen(peeker, "connect", _sqlite_query_only)
        event.listen(sync_engine, "engine_disposed", lambda _: peeker.dispose())
        _PEEKERS[sync_engine] = peeker
    return peeker


def _is_file(u: URL) -> bool:
    database = u.database or ""
    return database not in ("", ":memory:") and "mode=memory" not in database


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA query_only=1")


def nothing_matches(engine: AsyncEngine, query: sa.Select[Any]) -> bool:
    """True only when ``query`` surely returns no row: checked synchronously on SQLite (a WAL
    reader, which never waits for writers). False when it may return rows, when SQLite's file
    is busy, and always on PostgreSQL (where the caller's own query is cheap enough)."""
    peeker = _peeker(engine)
    if peeker is None:
        return False
    try:
        with peeker.connect() as conn:
            return conn.execute(query.limit(1)).first() is None
    except sa.exc.OperationalError:
        return False


async def claim_rows(
    engine: AsyncEngine,
    table: sa.Table,
    claimable: sa.ColumnElement[bool],
    order_by: Sequence[Any],
    limit: int,
    values: dict[str, Any],
    one_at_a_time: int | None = None,
) -> list[sa.RowMapping]:
    """Lease up to ``limit`` rows of ``table`` that are ``claimable`` (first in ``order_by``):
    set ``values`` on them and return them as updated. What every poller does each tick.

    It looks first (:func:`nothing_matches`) and writes only when something is claimable.
    Concurrent claimers never get the same row: PostgreSQL skips rows another claimer holds
    (``FOR UPDATE SKIP LOCKED``), SQLite serialises claimers with its write lock, and the
    UPDATE checks ``claimable`` again. ``one_at_a_time`` (an advisory lock key) serialises
    claimers on PostgreSQL too, for a ``claimable`` that looks at other rows (an outbox in
    order: a row waits while an earlier one is leased, which a claimer skipping the earlier
    rows another has locked but not yet leased would not see).
    """
    candidates = sa.select(table.c.id).where(claimable)
    if nothing_matches(engine, candidates):
        return []
    async with writing(engine) as conn:
        if one_at_a_time is not None and conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(one_at_a_time)))
        query = candidates.order_by(*order_by).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list((await conn.execute(query)).scalars())
        if not ids:
            return []
        result = await conn.execute(
            sa.update(table)
            .where(table.c.id.in_(ids), claimable)
            .values(**values)
            .returning(*table.columns)
        )
        return list(result.mappings())


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One read-only transaction (a consistent snapshot; never waits for writers on SQLite)."""
    async with _connected(engine) as conn:
        await conn.execution_options(**{READ_ONLY: True})
        async with conn.begin():
            yield conn


def alembic_config(url: str) -> Config:
    """Alembic settings built in code, pointing at the migrations shipped inside this package,
    so migrating works from an installed wheel with no ``alembic.ini`` around."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", FILE_TEMPLATE)
    # ConfigParser interpolation would eat the '%' of percent-encoded passwords.
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


@functools.cache
def head_revisions() -> tuple[str, ...]:
    """The revision ids the shipped migrations end at (read once per process)."""
    script = ScriptDirectory(str(MIGRATIONS))
    return tuple(sorted(script.get_heads()))


PG_CONNECT_TIMEOUT = 5


def _pg_connect_args(u: URL) -> dict[str, Any]:
    """A server that accepts connections but never answers must not hang the bot: a connect
    timeout unless the URL sets its own."""
    return {} if "connect_timeout" in u.query else {"connect_timeout": PG_CONNECT_TIMEOUT}


def upgrade(url: str) -> None:
    """Apply every pending migration to the database at ``url`` (creating a SQLite file and its
    folder if needed). Idempotent; replicas starting together on PostgreSQL take turns.

    Raises :class:`StorageUnavailable` when the database cannot be reached.
    """
    u = make_url(sync_url(url))
    if _backend(u) == "sqlite":
        _ensure_sqlite_parent(u)
    args = _pg_connect_args(u) if _backend(u) == "postgresql" else {}
    engine = sa.create_engine(u, poolclass=NullPool, connect_args=args)
    try:
        try:
            conn = engine.connect()
        except _CONNECT_ERRORS as exc:
            raise unavailable(u, exc) from exc
        with conn, conn.begin():
            if _backend(u) == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def _current_revisions(conn: sa.Connection) -> tuple[str, ...]:
    return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))


async def schema_is_current(engine: AsyncEngine) -> bool:
    """True when the database answers and its schema is at the shipped head (for /readyz)."""
    try:
        async with reading(engine) as conn:
            current = await conn.run_sync(_current_revisions)
    except (StorageUnavailable, sa.exc.DBAPIError):
        return False
    return current == head_revisions()


async def ping(engine: AsyncEngine) -> None:
    """Round-trip ``SELECT 1``; raises :class:`StorageUnavailable` if the database is down."""
    try:
        async with reading(engine) as conn:
            await conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        raise unavailable(engine.url, exc) from exc
