"""The simulator's D1 databases are SQLite databases, as D1's are.

Each database is an in-memory SQLite connection. A query runs as D1's HTTP API runs one:
its ``;``-separated statements are one batch, in one transaction, each answered with its rows
and its ``meta``; a statement that fails rolls the whole batch back and the call answers
HTTP 400 with code 7500 and SQLite's message (D1 answers invalid SQL with 400 since
2024-04). D1 enforces foreign keys and refuses ``BEGIN``/``COMMIT`` in a query (it runs the
batch in its own transaction); so does the simulator, through SQLite's authorizer, so a
``COMMIT`` in the middle of a file cannot keep half of it. Each Time Travel bookmark keeps a copy
of the database as it was then (``serialize``), so a restore really brings it back.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from bot.d1.statements import split_statements

SQL_ERROR = 7500  # D1's code for a query that failed


def _no_transactions(action: int, *_: object) -> int:
    """SQLite's authorizer while a query's statements run: ``BEGIN``, ``COMMIT``, ``END``,
    ``ROLLBACK`` and savepoints are refused (SQLITE_AUTH), everything else is allowed."""
    if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


@dataclass(frozen=True, slots=True)
class QueryFailed(Exception):
    """A statement of the batch failed; nothing of the batch was kept."""

    message: str

    def __str__(self) -> str:
        return self.message


class SqlDatabase:
    """One SQLite database in memory. Not thread-safe by itself: the simulator's state lock
    guards every call."""

    def __init__(self) -> None:
        self._conn = self._open()

    @staticmethod
    def _open() -> sqlite3.Connection:
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def snapshot(self) -> bytes:
        """The database file as it is now (empty for a database never written)."""
        if self._scalar("PRAGMA page_count") == 0:
            return b""
        return self._conn.serialize()

    def load(self, image: bytes) -> None:
        """Replace the whole database with ``image`` (a Time Travel restore)."""
        if not image:
            self._conn.close()
            self._conn = self._open()
            return
        self._conn.deserialize(image)
        self._conn.execute("PRAGMA foreign_keys = ON")

    def size(self) -> int:
        page_size = self._scalar("PRAGMA page_size")
        pages = self._scalar("PRAGMA page_count")
        return page_size * pages

    def num_tables(self) -> int:
        return self._scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )

    def _scalar(self, sql: str) -> int:
        row = self._conn.execute(sql).fetchone()
        return int(row[0]) if row else 0

    def query(self, sql: str, params: list[str] | None = None) -> tuple[list[dict[str, Any]], bool]:
        """Run ``sql`` as one batch: (one D1 result per statement, whether the database changed).
        Raises ``QueryFailed`` (and keeps nothing) when a statement fails."""
        statements = split_statements(sql)
        if not statements:
            raise QueryFailed("No SQL statements detected.")
        if params and len(statements) > 1:
            raise QueryFailed("Parameters are only accepted with a single statement.")
        schema_before = self._scalar("PRAGMA schema_version")
        changes_before = self._conn.total_changes
        results: list[dict[str, Any]] = []
        self._conn.execute("BEGIN")
        try:
            # the query's own statements may not end or nest the batch's transaction
            self._conn.set_authorizer(_no_transactions)
            try:
                for statement in statements:
                    results.append(self._run(statement, params or []))
            finally:
                self._conn.set_authorizer(None)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise QueryFailed(f"{exc}: {_sqlite_code(exc)}") from None
        changed = (
            self._conn.total_changes != changes_before
            or self._scalar("PRAGMA schema_version") != schema_before
        )
        size = self.size()
        for result in results:
            result["meta"]["size_after"] = size
        return results, changed

    def _run(self, statement: str, params: list[str]) -> dict[str, Any]:
        started = time.perf_counter()
        before = self._conn.total_changes
        cursor = self._conn.execute(statement, params)
        columns = [c[0] for c in cursor.description or ()]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        changes = self._conn.total_changes - before
        return {
            "results": rows,
            "success": True,
            "meta": {
                "changed_db": changes > 0 or _is_schema_change(statement),
                "changes": changes,
                "duration": round((time.perf_counter() - started) * 1000, 3),
                "last_row_id": cursor.lastrowid or 0,
                "rows_read": len(rows),
                "rows_written": changes,
                "size_after": 0,
            },
        }


def _is_schema_change(statement: str) -> bool:
    head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
    return head in ("CREATE", "DROP", "ALTER")


def _sqlite_code(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return name if isinstance(name, str) else "SQLITE_ERROR"
