"""The backward-compatibility lint: statements that break the version running now.

While a release rolls out, the stable version keeps serving (and comes back on a rollback)
against the migrated schema. So a migration should only add: the lint flags what takes
something away or changes it under the running code —

- ``DROP TABLE`` (``drop_table``) and ``ALTER TABLE ... DROP COLUMN`` (``drop_column``);
- ``ALTER TABLE ... RENAME TO`` / ``RENAME COLUMN`` (``rename``);
- a ``NOT NULL`` column without a ``DEFAULT`` added to an existing table
  (``not_null_without_default``): the running version's inserts do not set it;
- a column whose type changes (``type_change``). SQLite has no ``ALTER COLUMN``: types change
  through a table rebuild (``CREATE TABLE new_t``, copy, ``DROP TABLE t``,
  ``ALTER TABLE new_t RENAME TO t``). A rebuild is recognised as one change of ``t``, and
  judged by comparing the table before (from the database's own schema) and after: a column
  gone, a type changed or a ``NOT NULL`` column without default added is flagged, the drop
  and the rename themselves are not;
- a statement the parser cannot read (``unparsable``): nothing is vouched for it.

SQL is read with sqlglot's SQLite dialect, statement by statement (split as SQLite splits
them, so a trigger's body stays whole). Triggers, indexes, views, inserts and updates are
not flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from bot.d1.statements import split_statements
from bot.engine.migrations import Finding, MigrationFile

SHOWN = 200  # characters of a statement kept in a finding


@dataclass(frozen=True, slots=True)
class Column:
    type: str
    not_null: bool
    has_default: bool


@dataclass(slots=True)
class Schema:
    """Tables and their columns, as far as the lint follows them (lower-cased names)."""

    tables: dict[str, dict[str, Column]] = field(default_factory=dict)

    @classmethod
    def of(cls, definitions: Sequence[str]) -> Schema:
        """From the ``CREATE TABLE`` statements ``sqlite_master`` holds."""
        schema = cls()
        for sql in definitions:
            try:
                tree = sqlglot.parse_one(sql, read="sqlite")
            except SqlglotError:
                continue
            if isinstance(tree, exp.Create) and _kind(tree) == "TABLE":
                found = _table_def(tree)
                if found is not None:
                    schema.tables[found[0]] = found[1]
        return schema


def _kind(node: exp.Expression) -> str:
    kind = node.args.get("kind")
    return str(kind).upper() if kind is not None else ""


def _name(node: exp.Expression | None) -> str:
    return node.name.lower() if node is not None else ""


def _column(defn: exp.ColumnDef) -> Column:
    constraints = [c.args.get("kind") for c in defn.args.get("constraints") or ()]
    kind = defn.args.get("kind")
    return Column(
        type=kind.sql("sqlite").upper() if kind is not None else "",
        not_null=any(isinstance(c, exp.NotNullColumnConstraint) for c in constraints),
        has_default=any(isinstance(c, exp.DefaultColumnConstraint) for c in constraints),
    )


def _table_def(tree: exp.Create) -> tuple[str, dict[str, Column]] | None:
    target = tree.this
    if isinstance(target, exp.Schema):
        columns = {_name(c): _column(c) for c in target.expressions if isinstance(c, exp.ColumnDef)}
        columns.update(
            {
                c.name.lower(): Column("", False, False)
                for c in target.expressions
                if isinstance(c, exp.Identifier)
            }
        )
        return _name(target.this), columns
    if isinstance(target, exp.Table):  # CREATE TABLE ... AS SELECT: columns unknown
        return _name(target), {}
    return None


def _is_trigger(statement: str) -> bool:
    words = " ".join(line.split("--", 1)[0] for line in statement.splitlines()).upper().split()[:4]
    return words[:1] == ["CREATE"] and "TRIGGER" in words


def _shown(statement: str) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= SHOWN else flat[: SHOWN - 1] + "…"


class SqliteLinter:
    """Lints migration files in the order they apply, following the schema from the
    database's current one (``definitions``) through each statement."""

    def lint_all(
        self, files: Sequence[MigrationFile], definitions: Sequence[str] = ()
    ) -> dict[str, list[Finding]]:
        schema = Schema.of(definitions)
        return {f.name: self._lint(f, schema) for f in files}

    def _lint(self, migration: MigrationFile, schema: Schema) -> list[Finding]:
        findings: list[Finding] = []
        # name -> (its columns, None when the lint never saw its definition; the statement)
        dropped: dict[str, tuple[dict[str, Column] | None, str]] = {}
        for statement in split_statements(migration.sql):
            shown = _shown(statement)
            if _is_trigger(statement):
                continue  # additive; sqlglot does not model trigger bodies
            try:
                trees = [
                    t
                    for t in sqlglot.parse(statement, read="sqlite")
                    if isinstance(t, exp.Expression)
                ]
            except SqlglotError as exc:
                findings.append(Finding("unparsable", shown, str(exc).splitlines()[0][:200]))
                continue
            for tree in trees:
                findings += self._statement(tree, shown, schema, dropped)
        for name, (_, statement) in dropped.items():
            findings.append(Finding("drop_table", statement, f"table {name} is dropped"))
        return findings

    def _statement(
        self,
        tree: exp.Expression,
        shown: str,
        schema: Schema,
        dropped: dict[str, tuple[dict[str, Column] | None, str]],
    ) -> list[Finding]:
        if isinstance(tree, exp.EndStatement):
            return []
        if isinstance(tree, exp.Command):
            return self._command(tree, shown)
        if isinstance(tree, exp.Create) and _kind(tree) == "TABLE":
            found = _table_def(tree)
            if found is not None:
                schema.tables[found[0]] = found[1]
            return []
        if isinstance(tree, exp.Drop) and _kind(tree) == "TABLE":
            for table in tree.args.get("tables") or [tree.this]:
                name = _name(table)
                dropped[name] = (schema.tables.pop(name, None), shown)
            return []
        if isinstance(tree, exp.Alter) and _kind(tree) == "TABLE":
            return self._alter(tree, shown, schema, dropped)
        return []

    def _command(self, tree: exp.Command, shown: str) -> list[Finding]:
        # sqlglot hands over what it does not model as a command; triggers are additive,
        # anything else it could not read is not vouched for.
        words = f"{tree.this} {tree.expression or ''}".upper().split()
        if words[:1] == ["CREATE"] and ("TRIGGER" in words[:4] or "VIEW" in words[:4]):
            return []
        if words[:1] in (["DROP"],) and ("TRIGGER" in words[:3] or "VIEW" in words[:3]):
            return []
        return [Finding("unparsable", shown, "sqlglot could not read this statement")]

    def _alter(
        self,
        tree: exp.Alter,
        shown: str,
        schema: Schema,
        dropped: dict[str, tuple[dict[str, Column] | None, str]],
    ) -> list[Finding]:
        table = _name(tree.this)
        columns = schema.tables.get(table)
        findings: list[Finding] = []
        for action in tree.args.get("actions") or ():
            if isinstance(action, exp.AlterRename):
                new = _name(action.this)
                moved = schema.tables.pop(table, {})
                schema.tables[new] = moved
                if new in dropped:  # the last step of a table rebuild
                    before, _ = dropped.pop(new)
                    findings += _rebuilt(new, before, moved, shown)
                else:
                    findings.append(Finding("rename", shown, f"table {table} becomes {new}"))
            elif isinstance(action, exp.RenameColumn):
                old, new = _name(action.this), _name(action.args.get("to"))
                if columns is not None and old in columns:
                    columns[new] = columns.pop(old)
                findings.append(Finding("rename", shown, f"column {table}.{old} becomes {new}"))
            elif isinstance(action, exp.Drop):
                for column in action.args.get("tables") or [action.this]:
                    name = _name(column)
                    if columns is not None:
                        columns.pop(name, None)
                    findings.append(Finding("drop_column", shown, f"column {table}.{name}"))
            elif isinstance(action, exp.ColumnDef):
                added = _column(action)
                if columns is not None:
                    columns[_name(action)] = added
                if added.not_null and not added.has_default:
                    findings.append(
                        Finding(
                            "not_null_without_default",
                            shown,
                            f"column {table}.{_name(action)} is NOT NULL without a DEFAULT",
                        )
                    )
            elif isinstance(action, exp.AlterColumn):
                findings.append(
                    Finding("type_change", shown, f"column {table}.{_name(action)} changes")
                )
            elif isinstance(action, exp.Command) and str(action.this).upper() == "DROP":
                # SQLite's COLUMN keyword is optional (``ALTER TABLE t DROP c``); sqlglot
                # reads that form as a command
                words = str(action.expression or "").split()
                if words[:1] and words[0].upper() == "COLUMN":
                    words = words[1:]
                name = words[0].strip('"`[]') if words else "?"
                if columns is not None:
                    columns.pop(name, None)
                findings.append(Finding("drop_column", shown, f"column {table}.{name}"))
            else:  # an action the lint does not know is not vouched for
                findings.append(
                    Finding(
                        "unparsable", shown, f"ALTER TABLE {table}: an action the lint cannot read"
                    )
                )
        return findings


def _rebuilt(
    table: str, before: dict[str, Column] | None, after: dict[str, Column], shown: str
) -> list[Finding]:
    """A table rebuilt (dropped, then another renamed to its name): what changed for the
    running version. Without the table's earlier definition nothing can be vouched for."""
    if before is None:
        return [
            Finding(
                "drop_table",
                shown,
                f"table {table} is rebuilt, and its definition before is not known to compare",
            )
        ]
    findings = []
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            findings.append(
                Finding("drop_column", shown, f"column {table}.{name} is gone after the rebuild")
            )
        elif old.type != new.type:
            findings.append(
                Finding(
                    "type_change",
                    shown,
                    f"column {table}.{name} goes from {old.type or 'no type'} to "
                    f"{new.type or 'no type'} in the rebuild",
                )
            )
    if before:
        for name, new in after.items():
            if name not in before and new.not_null and not new.has_default:
                findings.append(
                    Finding(
                        "not_null_without_default",
                        shown,
                        f"column {table}.{name} is added NOT NULL without a DEFAULT",
                    )
                )
    return findings
