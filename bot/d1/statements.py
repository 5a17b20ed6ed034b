"""Splitting a migration file into its statements, as SQLite itself reads them."""

from __future__ import annotations

import sqlite3


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql``, each ending in ``;`` where it was written with one, split as
    SQLite's own tokenizer does (``sqlite3.complete_statement``): a trigger's body, a string
    or a comment holding ``;`` stays one statement."""
    statements: list[str] = []
    pending = ""
    for part in sql.split(";"):
        pending = f"{pending};{part}" if pending else part
        if sqlite3.complete_statement(pending + ";"):
            if _has_code(pending):
                statements.append(pending.strip() + ";")
            pending = ""
    if pending.strip() and _has_code(pending):
        statements.append(pending.strip())
    return statements


def _has_code(text: str) -> bool:
    """Whether ``text`` holds more than whitespace and comments."""
    lines = []
    for line in text.splitlines():
        cut = line.split("--", 1)[0]
        lines.append(cut)
    stripped = "\n".join(lines)
    while "/*" in stripped:
        start = stripped.index("/*")
        end = stripped.find("*/", start + 2)
        stripped = stripped[:start] + (stripped[end + 2 :] if end >= 0 else "")
    return bool(stripped.strip())
