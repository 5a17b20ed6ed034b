"""D1 schema migrations: which files are pending, what the lint found, what was applied.

Migration files follow wrangler's layout — numbered ``.sql`` files (``0001_create_users.sql``)
in ``migrations_dir`` — and applied ones are tracked in the database's own ``d1_migrations``
table exactly as wrangler tracks them, so a team may apply some with ``wrangler d1 migrations
apply`` and others through the bot. A file is pending when it is in the source and its name
is not in ``d1_migrations``; pending files apply in wrangler's order (by the number before the
first ``_``, then by name).

What a deploy will do to its database is worked out when it is requested and stored on the
release (:class:`MigrationPlan`, in ``Release.migrations``): the card shows it before anyone
approves, the policy decides on its lint findings, and the migration stage applies exactly
those files — a file whose content changed since is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

# How much of a file's SQL the stored plan keeps for the card (the file itself stays in the
# source; the plan keeps its hash).
SQL_KEPT = 4000


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """One migration file as the source has it."""

    name: str
    sql: str
    url: str | None = None  # where a person can read the whole file, when the source knows

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """One row of ``d1_migrations`` (wrangler's columns)."""

    id: int
    name: str
    applied_at: str


FindingKind = Literal[
    "drop_table", "drop_column", "rename", "not_null_without_default", "type_change", "unparsable"
]

# Every kind is destructive: a statement the lint cannot read is not vouched for either.
DESTRUCTIVE: frozenset[str] = frozenset(
    {"drop_table", "drop_column", "rename", "not_null_without_default", "type_change", "unparsable"}
)

WHAT_BREAKS: dict[str, str] = {
    "drop_table": "the running version still reads and writes this table",
    "drop_column": "the running version still reads or writes this column",
    "rename": "the running version still uses the old name",
    "not_null_without_default": "the running version's inserts do not set this column",
    "type_change": "the running version reads and writes the old type",
    "unparsable": "the lint could not read this statement, so it cannot vouch for it",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """A statement that may break the version running now (it stays live until the new one
    takes all traffic, and comes back on a rollback)."""

    kind: str
    statement: str
    detail: str

    @property
    def destructive(self) -> bool:
        return self.kind in DESTRUCTIVE

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "statement": self.statement, "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Any) -> Finding:
        return cls(str(data.get("kind")), str(data.get("statement")), str(data.get("detail")))


_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


def number_of(name: str) -> int:
    """The number wrangler orders a file by: JavaScript's ``parseInt`` of what precedes the
    first ``_`` (its leading digits: ``0003.sql`` is 3, ``1-a.sql`` is 1); -1 when none."""
    found = _LEADING_INT.match(name.split("_", 1)[0])
    return int(found.group(1)) if found else -1


def wrangler_order(files: Iterable[MigrationFile]) -> list[MigrationFile]:
    return sorted(files, key=lambda f: (number_of(f.name), f.name))


def pending_of(
    files: Iterable[MigrationFile], applied: Iterable[AppliedMigration]
) -> list[MigrationFile]:
    """The files not in ``d1_migrations``, in the order they apply."""
    done = {a.name for a in applied}
    return [f for f in wrangler_order(files) if f.name not in done]


# "sent": about to be sent to D1 (stored first, so a restart that finds the file in
# d1_migrations knows this release applied it); "found": found applied in d1_migrations
# without this release sending it (wrangler, another tool) — its content is not vouched for.
FileStatus = Literal["pending", "sent", "applied", "found", "failed"]
FILE_STATUSES = ("pending", "sent", "applied", "found", "failed")


@dataclass(frozen=True, slots=True)
class PlannedFile:
    name: str
    sha256: str
    sql: str  # the first SQL_KEPT characters, for the card
    findings: tuple[Finding, ...] = ()
    status: FileStatus = "pending"
    error: str | None = None
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "name": self.name,
            "sha256": self.sha256,
            "sql": self.sql,
            "findings": [f.to_dict() for f in self.findings],
            "status": self.status,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Any) -> PlannedFile:
        status = data.get("status")
        return cls(
            name=str(data.get("name")),
            sha256=str(data.get("sha256")),
            sql=str(data.get("sql") or ""),
            findings=tuple(Finding.from_dict(f) for f in data.get("findings") or ()),
            status=status if status in FILE_STATUSES else "pending",
            error=data.get("error") if isinstance(data.get("error"), str) else None,
            url=data.get("url") if isinstance(data.get("url"), str) else None,
        )


PlanStatus = Literal["pending", "applied", "failed", "validated", "invalid"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One ``validate`` check after the migrations: what it ran, expected and got."""

    sql: str
    expected: Any
    got: Any
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {"sql": self.sql, "expected": self.expected, "got": self.got, "ok": self.ok}


@dataclass(frozen=True, slots=True)
class MigrationPlan:
    """A deploy's migrations, stored on the release as plain data."""

    database_id: str
    files: tuple[PlannedFile, ...] = ()
    status: PlanStatus = "pending"
    checks: tuple[dict[str, Any], ...] = field(default=())

    @property
    def findings(self) -> list[tuple[str, Finding]]:
        return [(f.name, x) for f in self.files for x in f.findings]

    @property
    def destructive(self) -> bool:
        return any(x.destructive for _, x in self.findings)

    @property
    def done(self) -> bool:
        return self.status in ("validated", "failed", "invalid")

    def file(self, name: str) -> PlannedFile | None:
        return next((f for f in self.files if f.name == name), None)

    def with_file(self, changed: PlannedFile) -> MigrationPlan:
        files = tuple(changed if f.name == changed.name else f for f in self.files)
        return replace(self, files=files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "database_id": self.database_id,
            "files": [f.to_dict() for f in self.files],
            "status": self.status,
            "checks": list(self.checks),
        }

    @classmethod
    def from_dict(cls, data: Any) -> MigrationPlan | None:
        if not isinstance(data, dict) or not isinstance(data.get("database_id"), str):
            return None
        status = data.get("status")
        return cls(
            database_id=data["database_id"],
            files=tuple(PlannedFile.from_dict(f) for f in data.get("files") or ()),
            status=status
            if status in ("pending", "applied", "failed", "validated", "invalid")
            else "pending",
            checks=tuple(c for c in data.get("checks") or () if isinstance(c, dict)),
        )


def plan_of(
    database_id: str, pending: Sequence[MigrationFile], findings: dict[str, list[Finding]]
) -> MigrationPlan:
    return MigrationPlan(
        database_id=database_id,
        files=tuple(
            PlannedFile(
                name=f.name,
                sha256=f.sha256,
                sql=f.sql[:SQL_KEPT],
                findings=tuple(findings.get(f.name, ())),
                url=f.url,
            )
            for f in pending
        ),
    )


def expectation_met(expect: Any, rows: list[dict[str, Any]]) -> tuple[bool, Any]:
    """Whether a ``validate`` check's rows meet ``expect``, and what was got, in the form
    ``expect`` has: ``[]`` no rows; a list of rows, exactly those rows; ``{"at_least": n}``
    or ``{"at_most": n}``, the first column of the first row compared with ``n``; any other
    value, the first column of the only row equal to it (``"ok"`` for
    ``PRAGMA integrity_check``, a number for a row count)."""
    first = next(iter(rows[0].values()), None) if rows and rows[0] else None
    if isinstance(expect, list):
        return rows == expect, rows
    if isinstance(expect, dict) and ("at_least" in expect or "at_most" in expect):
        if not isinstance(first, int | float) or isinstance(first, bool):
            return False, first
        low, high = expect.get("at_least"), expect.get("at_most")
        met = (low is None or first >= low) and (high is None or first <= high)
        return met, first
    return len(rows) == 1 and first == expect, first if len(rows) == 1 else rows
