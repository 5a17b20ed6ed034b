"""The tamper-evident audit trail: a keyed hash chain over the ``audit_events`` table.

Each record stores ``prev_hash`` (the previous record's ``hash``, or 64 zeros for the first),
``key_id`` (which HMAC key made it, see storage.audit_keys) and ``hash`` = HMAC-SHA256 under
that key of the canonical JSON of every other column, ``seq``, ``prev_hash`` and ``key_id``
included (keys sorted, no whitespace, times as ISO 8601 UTC with microseconds)::

    {"action":"release.requested","actor":"U1","after":"requested","at":"2026-11-26T12:00:00.000000+00:00",
     "before":null,"detail":"{}","environment":"production","key_id":"3f1c9a0b","prev_hash":"000...0",
     "release_id":1,"release_key":"R-1","seq":1,"service":"tax-api"}

The key is held by the process, never by the database: someone who can write to the database
cannot recompute a hash that verifies. Records written before the chain was keyed have a NULL
``key_id`` and a plain SHA-256 over the same JSON without ``key_id``; they stay verifiable as
they are, and the first keyed record after them is an ``audit.keyed`` record saying so. Once a
keyed record appears, a plain one after it breaks the chain.

An auditor holding the key can recompute it with any SQL client and an HMAC tool; without the
key, :func:`verify_chain` still checks the links and says authenticity was not checked. Editing
a column, deleting a record or moving records breaks the chain at that record, and
:func:`verify_chain` says which and why. (Cutting records off the *end* leaves a valid shorter
chain; compare the head seq and hash with a copy kept elsewhere, such as the audit channel.)

Writers never fork the chain: the writer holds a database-wide lock from reading the last hash
to committing (``pg_advisory_xact_lock`` on PostgreSQL; the ``BEGIN IMMEDIATE`` write lock of
every writing transaction on SQLite, see storage.db). There is no API to update or delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.engine.model import AuditEntry, Release
from storage.audit_keys import AuditKey
from storage.db import reading
from storage.outbox import OutboxWriter
from storage.tables import audit_events

GENESIS = "0" * 64

# pg_advisory_xact_lock key held by audit writers ("rb_aud").
AUDIT_LOCK_KEY = 0x72625F617564

# How far from its place verify_chain looks for a record that was moved.
_MOVE_WINDOW = 1000

_COLUMNS = [c.name for c in audit_events.columns]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# json.dumps with these options, built once (dumps builds an encoder per call).
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
)
# How SQLAlchemy stores a UTC datetime on SQLite: "2026-11-26 12:00:00.000123".
_SQLITE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}")


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, times in ISO UTC: the same value always gives the same text."""
    return _ENCODER.encode(value)


def _at_text(value: datetime | str) -> str:
    # verify_chain reads SQLite's stored text as is: a time someone overwrote with something
    # unparsable must fail the hash, not crash the verifier.
    if isinstance(value, str):
        if len(value) == 26 and _SQLITE_TIME.fullmatch(value):
            # The stored form of a valid time, spelled the canonical way without parsing it:
            # if it is no real time, no hash the writer made can match it either.
            return f"{value[:10]}T{value[11:]}+00:00"
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        value = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return _iso(value)


_HASHED = [name for name in _COLUMNS if name != "hash"]
# Plain records (written before the chain was keyed) are hashed as they always were: without
# the key_id column, which did not exist then.
_PLAIN = [name for name in _HASHED if name != "key_id"]
# The canonical JSON of a row tuple (columns in table order), for verify_chain's walk: spelled
# out key by key in sorted order, strings escaped as json does.
_AT, _SEQ, _PREV, _HASH, _KEY = (
    _COLUMNS.index(n) for n in ("at", "seq", "prev_hash", "hash", "key_id")
)
_ESCAPE = json.encoder.encode_basestring  # what json uses for ensure_ascii=False


def _spelling(names: list[str]) -> list[tuple[str, int]]:
    return [
        (("{" if i == 0 else ",") + f'"{name}":', _COLUMNS.index(name))
        for i, name in enumerate(sorted(names))
    ]


_SPELLING_PLAIN = _spelling(_PLAIN)
_SPELLING_KEYED = _spelling(_HASHED)

# The action of the record that starts the keyed part of a chain begun with plain records.
KEYED_ACTION = "audit.keyed"


def record_text(record: Mapping[str, Any]) -> bytes:
    """The canonical JSON a record's hash covers: every column but ``hash`` (``key_id`` only
    when the record is keyed), UTF-8."""
    names = _PLAIN if record.get("key_id") is None else _HASHED
    fields = {name: record[name] for name in names}
    fields["at"] = _at_text(fields["at"])
    return _ENCODER.encode(fields).encode("utf-8")


def record_hash(record: Mapping[str, Any], key: AuditKey | None = None) -> str:
    """A record's hash (hex): HMAC-SHA256 of :func:`record_text` under ``key``, or plain SHA-256
    without one (how records were hashed before the chain was keyed)."""
    text = record_text(record)
    return key.digest(text) if key is not None else hashlib.sha256(text).hexdigest()


def _row_text(row: Sequence[Any]) -> bytes | None:
    """:func:`record_text` of a row tuple whose values are strings, ints and None (None for
    anything else: the caller falls back to record_text)."""
    parts = []
    for prefix, position in _SPELLING_PLAIN if row[_KEY] is None else _SPELLING_KEYED:
        value = row[position]
        if position == _AT:
            value = _at_text(value)
        kind = type(value)
        if kind is str:
            parts.append(prefix + _ESCAPE(value))
        elif value is None:
            parts.append(prefix + "null")
        elif kind is int:
            parts.append(prefix + int.__repr__(value))
        else:
            return None
    parts.append("}")
    return "".join(parts).encode("utf-8")


async def append_entries(
    conn: AsyncConnection,
    entries: Sequence[AuditEntry],
    outbox: OutboxWriter | None = None,
    release: Release | None = None,
    key: AuditKey | None = None,
) -> list[int]:
    """Chain and insert ``entries`` inside the caller's open writing transaction; returns their
    seqs. With ``key``, each hash is an HMAC under it and the record names its key id; the
    first keyed record after plain ones is an ``audit.keyed`` record saying so. With
    ``outbox``, the audit channel's and the webhooks' rows for them are written in the same
    transaction: the caller commits them together with the change they describe."""
    if not entries:
        return []
    if conn.dialect.name == "postgresql":
        # Held to commit: the next writer reads our last hash, never the one before it.
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))
    last = (
        await conn.execute(
            sa.select(audit_events.c.seq, audit_events.c.hash, audit_events.c.key_id)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev_hash = (last.seq, last.hash) if last else (0, GENESIS)
    chained = list(entries)
    if key is not None and last is not None and last.key_id is None:
        marker = AuditEntry(
            actor="releasebot",
            action=KEYED_ACTION,
            at=entries[0].at,
            detail={"key_id": key.key_id, "plain_until": last.seq},
        )
        chained.insert(0, marker)
    rows = []
    for entry in chained:
        if entry.at.tzinfo is None:
            raise ValueError(f"audit entry {entry.action!r} has a naive time; use aware UTC")
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            "at": entry.at.astimezone(UTC),
            "actor": entry.actor,
            "action": entry.action,
            "release_id": entry.release_id,
            "release_key": entry.release_key,
            "service": entry.service,
            "environment": entry.environment,
            "before": entry.before,
            "after": entry.after,
            "detail": canonical_json(entry.detail or {}),
            "prev_hash": prev_hash,
            "key_id": key.key_id if key is not None else None,
        }
        row["hash"] = prev_hash = record_hash(row, key)
        rows.append(row)
    await conn.execute(sa.insert(audit_events), rows)
    seqs = [r["seq"] for r in rows]
    if outbox is not None:
        await outbox.write(conn, list(zip(seqs, chained, strict=True)), release)
    return seqs[len(chained) - len(entries) :]


def entry_from_row(row: Mapping[str, Any]) -> AuditEntry:
    """The engine's view of a stored record."""
    return AuditEntry(
        actor=row["actor"],
        action=row["action"],
        at=row["at"],
        release_id=row["release_id"],
        release_key=row["release_key"],
        service=row["service"],
        environment=row["environment"],
        before=row["before"],
        after=row["after"],
        detail=json.loads(row["detail"]),
    )


async def _batches(
    engine: AsyncEngine, where: Any, batch_size: int, raw_time: bool = False
) -> AsyncIterator[list[Mapping[str, Any]]]:
    # Keyset paging on seq: constant memory, and no connection held while the caller works.
    after = 0
    while True:
        async with reading(engine) as conn:
            columns: list[Any] = list(audit_events.columns)
            if raw_time and conn.dialect.name == "sqlite":
                columns[_COLUMNS.index("at")] = sa.type_coerce(audit_events.c.at, sa.String).label(
                    "at"
                )
            result = await conn.execute(
                sa.select(*columns)
                .where(where, audit_events.c.seq > after)
                .order_by(audit_events.c.seq)
                .limit(batch_size)
            )
            rows = list(result.mappings())
        if not rows:
            return
        yield cast("list[Mapping[str, Any]]", rows)  # RowMapping is keyed by str here
        after = rows[-1]["seq"]


async def iter_audit(
    engine: AsyncEngine, since: datetime | None = None, batch_size: int = 1000
) -> AsyncIterator[dict[str, Any]]:
    """Every record in seq order (those at or after ``since``, if given), as plain dicts with
    all columns; ``at`` is an aware UTC datetime and ``detail`` a dict. For export."""
    where = audit_events.c.at >= since if since is not None else sa.true()
    async for rows in _batches(engine, where, batch_size):
        for row in rows:
            record = dict(row)
            record["detail"] = json.loads(record["detail"])
            yield record


class Keyring:
    """The keys a verifier holds, by key id; what hash each record should have."""

    def __init__(self, keys: Sequence[AuditKey] = ()) -> None:
        self.keys = {key.key_id: key for key in keys}

    def expected(self, record: Mapping[str, Any]) -> str | None:
        """The hash ``record`` should carry, or None when it is keyed under a key not held."""
        key_id = record.get("key_id")
        if key_id is None:
            return record_hash(record)
        key = self.keys.get(key_id)
        return record_hash(record, key) if key is not None else None


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :func:`verify_chain` found. ``str(report)`` is one line for people.

    ``problem`` is ``"edited"``, ``"deleted"``, ``"moved"``, ``"replaced"``, ``"unkeyed"``
    or ``"unknown_key"`` (see :class:`_KeyOrder`);
    ``reason`` says it in words. ``last_seq``/``last_hash`` are those of the last record known
    good (the head of the chain, when ``ok``); ``checked`` counts the records read, ``plain``
    and ``keyed`` those whose hash was recomputed (SHA-256, HMAC), ``unchecked`` the keyed
    records whose key was not given (only their links were checked). ``authenticated`` is
    False when the links are fine but authenticity could not be established.
    """

    ok: bool
    checked: int
    last_seq: int | None
    last_hash: str | None
    broken_seq: int | None = None
    problem: str | None = None
    reason: str | None = None
    plain: int = 0
    keyed: int = 0
    unchecked: int = 0
    key_ids: tuple[str, ...] = ()
    missing_keys: tuple[str, ...] = ()
    keys_given: bool = False

    @property
    def authenticated(self) -> bool:
        if not self.ok or self.unchecked:
            return False
        # with no record keyed there is nothing a key could vouch for: a plain SHA-256
        # trail is as easy to recompute as to edit
        return self.keyed > 0 or self.checked == 0

    def __str__(self) -> str:
        if not self.ok:
            return f"audit chain BROKEN at record {self.broken_seq}: {self.reason}"
        if self.last_seq is None:
            return "audit chain OK: no records yet"
        head = f"{self.checked} records, last seq {self.last_seq} (hash {self.last_hash})"
        if self.unchecked:
            ids = ", ".join(self.missing_keys)
            return (
                f"audit chain links OK, authenticity not checked: {head}; "
                f"{self.unchecked} records are keyed under key id {ids}, not given"
                + (
                    " (the keys given have other ids: if those are every key the bot has used, "
                    "these records were not made by it; a possible forgery)"
                    if self.keys_given
                    else ""
                )
            )
        if not self.authenticated:
            return (
                f"audit chain links OK, authenticity not checked: {head}; "
                "no record is keyed (all are plain SHA-256)"
            )
        if self.keyed:
            ids = ", ".join(self.key_ids)
            plain = f"{self.plain} plain SHA-256 before the key, " if self.plain else ""
            return f"audit chain OK: {head}; {plain}{self.keyed} HMAC under key id {ids}"
        return f"audit chain OK: {head}"


async def _moved_from(engine: AsyncEngine, row: Mapping[str, Any], keyring: Keyring) -> int | None:
    """The seq a record was written with, if it verifies intact under another seq: right after
    the record its prev_hash names, or within ``_MOVE_WINDOW`` of where it is now."""
    seq = row["seq"]
    candidates = []
    if row["prev_hash"] == GENESIS:
        candidates.append(1)
    else:
        async with reading(engine) as conn:
            pred = await conn.scalar(
                sa.select(audit_events.c.seq).where(audit_events.c.hash == row["prev_hash"])
            )
        if pred is not None:
            candidates.append(pred + 1)
    for distance in range(1, _MOVE_WINDOW + 1):
        candidates += [seq - distance, seq + distance]
    for candidate in candidates:
        moved = {**row, "seq": candidate}
        if candidate > 0 and candidate != seq and keyring.expected(moved) == row["hash"]:
            return candidate
    return None


async def _diagnose(
    engine: AsyncEngine,
    row: Mapping[str, Any],
    prev_seq: int,
    prev_hash: str,
    keyring: Keyring,
    keyed_before: bool,
) -> tuple[int, str, str] | None:
    """(broken seq, problem, reason) if ``row`` does not follow the good record ``prev_seq``."""
    seq = row["seq"]
    if seq != prev_seq + 1:
        first = prev_seq + 1
        missing = f"record {first} is" if seq == first + 1 else f"records {first} to {seq - 1} are"
        start = prev_seq or "its start"
        return (
            first,
            "deleted",
            f"{missing} missing (deleted); the chain jumps from {start} to {seq}",
        )
    expected = keyring.expected(row)
    if expected is not None and expected != row["hash"]:
        origin = await _moved_from(engine, row, keyring)
        if origin is not None:
            reason = (
                f"record {seq} holds the record written as {origin} "
                "(records were reordered, swapped or renumbered)"
            )
            return seq, "moved", reason
        return seq, "edited", f"record {seq} was edited: its contents no longer match its hash"
    if row["key_id"] is None and keyed_before:
        reason = (
            f"record {seq} is a plain SHA-256 record after keyed ones "
            "(the chain was rewritten from here without the key)"
        )
        return seq, "unkeyed", reason
    if row["prev_hash"] != prev_hash:
        if prev_seq == 0:
            return seq, "replaced", "record 1 does not start the chain (its prev_hash is not zeros)"
        reason = (
            f"record {prev_seq} was replaced: it is consistent on its own, but record {seq} "
            f"was chained to a different record {prev_seq}"
        )
        return prev_seq, "replaced", reason
    return None


def _raw_at() -> Any:
    return sa.type_coerce(audit_events.c.at, sa.String).label("at")


async def _read_record(engine: AsyncEngine, seq: int) -> Mapping[str, Any] | None:
    """One record with every column (SQLite's time as the text stored)."""
    async with reading(engine) as conn:
        columns: list[Any] = list(audit_events.columns)
        if conn.dialect.name == "sqlite":
            columns[_AT] = _raw_at()
        result = await conn.execute(sa.select(*columns).where(audit_events.c.seq == seq))
        row = result.mappings().first()
        return dict(row) if row is not None else None


def _sqlite_canonical() -> Any:
    """The canonical JSON of a record, built by SQLite (``json_object`` with the keys in sorted
    order escapes strings exactly as Python's json does), for records stored by the writer; a
    time not in the stored form gives "at":null, which no hash matches."""
    at = _raw_at().element
    stored_form = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
    at_text = sa.case(
        (
            at.op("GLOB")(stored_form + ".[0-9][0-9][0-9][0-9][0-9][0-9]"),
            sa.func.substr(at, 1, 10) + "T" + sa.func.substr(at, 12) + "+00:00",
        ),
        else_=sa.null(),
    )

    def spelled(names: list[str]) -> Any:
        pairs: list[Any] = []
        for name in sorted(names):
            pairs += [sa.literal(name), at_text if name == "at" else audit_events.c[name]]
        return sa.func.json_object(*pairs, type_=sa.String)

    return sa.case((audit_events.c.key_id.is_(None), spelled(_PLAIN)), else_=spelled(_HASHED))


Check = tuple[int, str, str, str | None, bytes | None]


@functools.cache
def _sqlite_checks_sql() -> tuple[str, dict[str, object]]:
    """The SQL of the SQLite check query, compiled once (named parameters ``after`` and
    ``limit``), with the values of its other parameters (the key names)."""
    statement = (
        sa.select(
            audit_events.c.seq,
            audit_events.c.prev_hash,
            audit_events.c.hash,
            audit_events.c.key_id,
            _sqlite_canonical(),
        )
        .where(audit_events.c.seq > sa.bindparam("after", type_=sa.Integer))
        .order_by(audit_events.c.seq)
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )
    compiled = statement.compile(
        dialect=sqlite_dialect.dialect(paramstyle="named"),
        compile_kwargs={"render_postcompile": True},
    )
    return str(compiled), dict(compiled.params)


async def _sqlite_checks(
    conn: AsyncConnection, after: int, batch_size: int
) -> list[tuple[int, str, str, str | None, str | None]]:
    """The check rows straight from the sqlite3 driver (plain tuples, no result processing:
    every column is already the text or integer the check needs), in the reading
    transaction of ``conn``."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if driver is None:
        raise sqlite3.OperationalError("no driver connection")
    sql, fixed = _sqlite_checks_sql()
    cursor = await driver.execute(sql, {**fixed, "after": after, "limit": batch_size})
    try:
        return list(await cursor.fetchall())
    finally:
        await cursor.close()


async def _read_checks(engine: AsyncEngine, after: int, batch_size: int) -> list[Check]:
    """(seq, prev_hash, hash, key_id, canonical text or None) of the records after ``after``.

    On SQLite the database spells out each record's canonical JSON; elsewhere (or if SQLite
    cannot) the rows are read whole and spelled here. None means "could not spell it
    quickly": the caller reads that record whole.
    """
    window = sa.and_(audit_events.c.seq > after)
    async with reading(engine) as conn:
        if conn.dialect.name == "sqlite":
            try:
                rows = await _sqlite_checks(conn, after, batch_size)
                return [
                    (seq, prev, stored, key_id, text.encode("utf-8") if text else None)
                    for seq, prev, stored, key_id, text in rows
                ]
            except (sa.exc.DBAPIError, sqlite3.Error):
                pass  # e.g. a value SQLite's JSON cannot hold: read the rows whole
        columns: list[Any] = list(audit_events.columns)
        if conn.dialect.name == "sqlite":
            columns[_AT] = _raw_at()
        result = await conn.execute(
            sa.select(*columns).where(window).order_by(audit_events.c.seq).limit(batch_size)
        )
        return [
            (row[_SEQ], row[_PREV], row[_HASH], row[_KEY], _row_text(row)) for row in result.all()
        ]


class _KeyOrder:
    """With keys given, a record under a key id not given cannot sit between records under
    given ones: a forger with write access to the database but not the key could otherwise
    relabel records with an unknown key id (only their links would be checked) and edit them
    freely. (Several keys may interleave: replicas restarted one by one during a rotation.)"""

    def __init__(self, given: Mapping[str, AuditKey]) -> None:
        self.given = given
        self.known_seen = False
        # the first record of a run under key ids not given, after a given one, its key id,
        # and the last good record before it
        self.run: tuple[int, str, int, str] | None = None

    def follow(
        self, seq: int, key_id: str | None, before: tuple[int, str]
    ) -> tuple[int, str, str, tuple[int, str]] | None:
        """(broken seq, problem, reason, the last good record before it), or None."""
        if key_id is None:
            return None
        if key_id in self.given:
            if self.run is not None:
                first, unknown, last_seq, last_hash = self.run
                reason = (
                    f"records {first} to {seq - 1} are keyed under key id {unknown}, not given, "
                    "between records under the keys given: a possible forgery (if "
                    f"{unknown} is a key the bot used between them, give it too)"
                )
                return first, "unknown_key", reason, (last_seq, last_hash)
            self.known_seen = True
        elif self.known_seen and self.run is None:
            self.run = (seq, key_id, *before)
        return None


async def verify_chain(
    engine: AsyncEngine, batch_size: int = 5000, keys: Sequence[AuditKey] = ()
) -> ChainReport:
    """Walk the chain in seq order and stop at the first record that breaks it.

    Plain records are checked by SHA-256, keyed ones by HMAC under the key they name (from
    ``keys``; several after a rotation). A keyed record whose key is not given has only its
    links checked, and the report says authenticity was not checked. Once a keyed record
    appeared, a plain one after it breaks the chain (a rewrite without the key).

    Needs only the database (works with the bot stopped) and constant memory: batches are
    read by keyset on seq, the next one while the current one is checked. A record that does
    not check out quickly is read whole and judged by :class:`Keyring` and the diagnosis.
    """
    keyring = Keyring(keys)
    by_id = keyring.keys
    sha256 = hashlib.sha256
    checked = plain = keyed = unchecked = 0
    seen_ids: dict[str, None] = {}
    missing: dict[str, None] = {}
    keyed_before = False
    order = _KeyOrder(by_id)
    # The last two good records: a "replaced" verdict condemns the later of them.
    good: list[tuple[int, str]] = [(0, GENESIS)]
    prev_seq, prev_hash = good[-1]
    pending: asyncio.Task[list[Check]] | None = asyncio.ensure_future(
        _read_checks(engine, 0, batch_size)
    )
    try:
        while pending is not None:
            checks = await pending
            pending = None
            if not checks:
                break
            if len(checks) == batch_size:
                pending = asyncio.ensure_future(_read_checks(engine, checks[-1][0], batch_size))
            for seq, prev, stored, key_id, text in checks:
                checked += 1
                if text is not None and seq == prev_seq + 1 and prev == prev_hash:
                    if key_id is None:
                        if not keyed_before and sha256(text).hexdigest() == stored:
                            plain += 1
                            good = [good[-1], (seq, stored)]
                            prev_seq, prev_hash = seq, stored
                            continue
                    else:
                        key = by_id.get(key_id)
                        if key is None or key.digest(text) == stored:
                            out_of_order = order.follow(seq, key_id, good[-1])
                            if out_of_order is not None:
                                return _broken(checked, out_of_order, bool(by_id))
                            if key is None:
                                unchecked += 1
                                missing[key_id] = None
                            else:
                                keyed += 1
                                seen_ids[key_id] = None
                            keyed_before = True
                            good = [good[-1], (seq, stored)]
                            prev_seq, prev_hash = seq, stored
                            continue
                row = await _read_record(engine, seq)
                if row is None:  # deleted while we looked: judge by what remains
                    continue
                verdict = await _diagnose(engine, row, prev_seq, prev_hash, keyring, keyed_before)
                if verdict is not None:
                    broken_seq, problem, reason = verdict
                    last_seq, last_hash = next(g for g in reversed(good) if g[0] < broken_seq)
                    return ChainReport(
                        False,
                        checked,
                        last_seq or None,
                        last_hash if last_seq else None,
                        broken_seq,
                        problem,
                        reason,
                        keys_given=bool(by_id),
                    )
                out_of_order = order.follow(seq, row["key_id"], good[-1])
                if out_of_order is not None:
                    return _broken(checked, out_of_order, bool(by_id))
                if row["key_id"] is None:
                    plain += 1
                elif row["key_id"] in by_id:
                    keyed += 1
                    seen_ids[row["key_id"]] = None
                    keyed_before = True
                else:
                    unchecked += 1
                    missing[row["key_id"]] = None
                    keyed_before = True
                good = [good[-1], (seq, row["hash"])]
                prev_seq, prev_hash = seq, row["hash"]
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await pending
    last_seq, last_hash = good[-1]
    return ChainReport(
        True,
        checked,
        last_seq or None,
        last_hash if last_seq else None,
        plain=plain,
        keyed=keyed,
        unchecked=unchecked,
        key_ids=tuple(seen_ids),
        missing_keys=tuple(missing),
        keys_given=bool(by_id),
    )


def _broken(
    checked: int, verdict: tuple[int, str, str, tuple[int, str]], keys_given: bool
) -> ChainReport:
    broken_seq, problem, reason, (last_seq, last_hash) = verdict
    return ChainReport(
        False,
        checked,
        last_seq or None,
        last_hash if last_seq else None,
        broken_seq,
        problem,
        reason,
        keys_given=keys_given,
    )
