"""The backward-compatibility lint on real SQLite migration statements."""

from __future__ import annotations

import sqlite3

import pytest

from bot.d1.lint import SqliteLinter
from bot.d1.statements import split_statements
from bot.engine.migrations import MigrationFile

USERS = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, age INTEGER, "
    "created_at TEXT DEFAULT CURRENT_TIMESTAMP)"
)


def kinds(sql: str, schema: tuple[str, ...] = (USERS,)) -> list[str]:
    found = SqliteLinter().lint_all([MigrationFile("0002_x.sql", sql)], schema)["0002_x.sql"]
    return [f.kind for f in found]


SAFE = [
    # additive changes the running version never notices
    "CREATE TABLE receipts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));",
    "ALTER TABLE users ADD COLUMN nickname TEXT;",
    "ALTER TABLE users ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';",
    "ALTER TABLE users ADD COLUMN score INTEGER NOT NULL DEFAULT 0 CHECK (score >= 0);",
    "CREATE INDEX IF NOT EXISTS idx_users_email ON users (email);",
    "CREATE UNIQUE INDEX idx_users_lower ON users (lower(email));",
    "DROP INDEX IF EXISTS idx_users_email;",
    "CREATE VIEW adults AS SELECT id, email FROM users WHERE age >= 18;",
    "INSERT INTO users (email) VALUES ('a@example.com'); UPDATE users SET age = 30 WHERE id = 1;",
    # a trigger's body holds statements of its own, ';' and all
    "CREATE TRIGGER users_touch AFTER UPDATE ON users FOR EACH ROW BEGIN "
    "UPDATE users SET created_at = CURRENT_TIMESTAMP WHERE id = NEW.id; "
    "INSERT INTO users (email) VALUES ('audit;copy'); END;",
    "CREATE TEMP TRIGGER IF NOT EXISTS no_delete BEFORE DELETE ON users BEGIN "
    "SELECT RAISE(ABORT, 'users are never deleted'); END;",
    "-- a comment; with a semicolon\nCREATE TABLE notes (body TEXT); /* and; another */",
    "PRAGMA defer_foreign_keys = true;",
]


@pytest.mark.parametrize("sql", SAFE)
def test_additive_statements_pass(sql: str) -> None:
    assert kinds(sql) == []


FLAGGED = [
    ("DROP TABLE users;", ["drop_table"]),
    ("DROP TABLE IF EXISTS main.users;", ["drop_table"]),
    ("ALTER TABLE users DROP COLUMN age;", ["drop_column"]),
    # SQLite's COLUMN keyword is optional
    ("ALTER TABLE users DROP age;", ["drop_column"]),
    ('ALTER TABLE users DROP "age";', ["drop_column"]),
    ("ALTER TABLE users RENAME TO customers;", ["rename"]),
    ("ALTER TABLE users RENAME COLUMN email TO mail;", ["rename"]),
    ("ALTER TABLE users ADD COLUMN tax_id TEXT NOT NULL;", ["not_null_without_default"]),
    ("ALTER TABLE users ADD COLUMN a TEXT; DROP TABLE users;", ["drop_table"]),
    ("ALTER TABLE ((( users nonsense;", ["unparsable"]),
]


@pytest.mark.parametrize(("sql", "expected"), FLAGGED)
def test_breaking_statements_are_flagged(sql: str, expected: list[str]) -> None:
    assert kinds(sql) == expected


REBUILD = """
PRAGMA defer_foreign_keys = true;
CREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT NOT NULL, age {age},
    created_at TEXT DEFAULT CURRENT_TIMESTAMP{extra});
INSERT INTO users_new (id, email, age, created_at) SELECT id, email, age, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
"""


def test_a_table_rebuild_is_judged_by_what_changed() -> None:
    # SQLite's way to add a constraint: rebuild with the same columns — nothing breaks
    assert kinds(REBUILD.format(age="INTEGER CHECK (age > 0)", extra="")) == []
    # ... to change a type: flagged as the type change, not as a drop and a rename
    assert kinds(REBUILD.format(age="TEXT", extra="")) == ["type_change"]
    assert kinds(REBUILD.format(age="INTEGER", extra=", region TEXT NOT NULL")) == [
        "not_null_without_default"
    ]
    # a rebuild of a table whose definition the lint never saw cannot be vouched for
    assert kinds(REBUILD.format(age="INTEGER", extra=""), schema=()) == ["drop_table"]


def test_a_rebuild_that_drops_a_column() -> None:
    sql = (
        "CREATE TABLE users_new (id INTEGER PRIMARY KEY, email TEXT NOT NULL, "
        "created_at TEXT DEFAULT CURRENT_TIMESTAMP);"
        "INSERT INTO users_new SELECT id, email, created_at FROM users;"
        "DROP TABLE users; ALTER TABLE users_new RENAME TO users;"
    )
    found = SqliteLinter().lint_all([MigrationFile("0003_slim.sql", sql)], (USERS,))
    assert [(f.kind, f.detail) for f in found["0003_slim.sql"]] == [
        ("drop_column", "column users.age is gone after the rebuild")
    ]


def test_files_are_followed_in_order() -> None:
    """A table made in one pending file and changed in the next is known to the lint."""
    files = [
        MigrationFile("0002_a.sql", "CREATE TABLE audit (id INTEGER PRIMARY KEY, at TEXT);"),
        MigrationFile(
            "0003_b.sql",
            "CREATE TABLE audit_new (id INTEGER PRIMARY KEY, at INTEGER);"
            "DROP TABLE audit; ALTER TABLE audit_new RENAME TO audit;",
        ),
    ]
    found = SqliteLinter().lint_all(files, ())
    assert found["0002_a.sql"] == []
    assert [f.kind for f in found["0003_b.sql"]] == ["type_change"]


def test_statements_split_as_sqlite_reads_them() -> None:
    sql = SAFE[9] + "\nSELECT 1"
    parts = split_statements(sql)
    assert len(parts) == 2
    assert all(sqlite3.complete_statement(p) for p in parts)
    assert split_statements("-- only a comment;\n/* ; */") == []


def test_a_column_dropped_without_the_column_keyword_is_named() -> None:
    """SQLite runs ``ALTER TABLE t DROP c`` as a column drop; the lint names the column."""
    db = sqlite3.connect(":memory:")
    db.execute(USERS)
    db.execute("ALTER TABLE users DROP age")  # SQLite takes it
    assert [r[1] for r in db.execute("PRAGMA table_info(users)")] == ["id", "email", "created_at"]
    found = SqliteLinter().lint_all(
        [MigrationFile("0002_x.sql", "ALTER TABLE users DROP age;")], (USERS,)
    )
    (finding,) = found["0002_x.sql"]
    assert (finding.kind, finding.detail) == ("drop_column", "column users.age")


def test_files_apply_in_wrangler_order() -> None:
    """wrangler sorts by ``parseInt(name.split("_")[0])``: the leading digits, numerically;
    equal numbers keep their name order."""
    from bot.engine.migrations import number_of, wrangler_order

    names = ["10-c.sql", "0001_init.sql", "2-b.sql", "0003.sql", "1-a.sql", "notes.sql"]
    ordered = [f.name for f in wrangler_order(MigrationFile(n, "") for n in names)]
    assert ordered == ["notes.sql", "0001_init.sql", "1-a.sql", "2-b.sql", "0003.sql", "10-c.sql"]
    assert [number_of(n) for n in ("0002_x.sql", "0003.sql", "x_1.sql", "12abc_y.sql")] == [
        2,
        3,
        -1,
        12,
    ]
