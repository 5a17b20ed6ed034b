"""wrangler's ``d1_migrations`` bookkeeping, as the queries that keep it.

wrangler (``packages/wrangler/src/d1/migrations``) creates the table with

    CREATE TABLE IF NOT EXISTS d1_migrations (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT UNIQUE,
        applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
    );

reads it with ``SELECT * FROM d1_migrations ORDER BY id``, and applies a file by sending its
SQL followed by ``INSERT INTO d1_migrations (name) values ('<file name>');`` as one query: D1
runs a query's statements as one batch in one transaction, so a file is recorded exactly when
it applied. The bot does the same, so a database may be migrated by either. Because ``name``
is unique, a file sent twice (a retry after a lost answer) fails as a whole the second time
and changes nothing.
"""

from __future__ import annotations

from typing import Any

from bot.engine.migrations import AppliedMigration, MigrationFile

TABLE = "d1_migrations"

CREATE_TABLE = f"""CREATE TABLE IF NOT EXISTS {TABLE}
(
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT UNIQUE,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);"""

TABLE_EXISTS = f"SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{TABLE}'"

TABLE_DEFINITIONS = (
    "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
    "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'"
)

LIST_APPLIED = f"SELECT * FROM {TABLE} ORDER BY id"


def apply_batch(migration: MigrationFile) -> str:
    """The file and its record, one batch (the name quoted as an SQL string)."""
    name = migration.name.replace("'", "''")
    return f"{migration.sql.rstrip()}\nINSERT INTO {TABLE} (name)\nvalues ('{name}');\n"


def applied_rows(rows: list[dict[str, Any]]) -> list[AppliedMigration]:
    found = []
    for row in rows:
        ident, name = row.get("id"), row.get("name")
        if isinstance(ident, int) and isinstance(name, str):
            found.append(AppliedMigration(ident, name, str(row.get("applied_at") or "")))
    return found
