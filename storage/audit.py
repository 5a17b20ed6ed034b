"""The tamper-evident audit trail: a SHA-256 hash chain over the ``audit_events`` table.

Each record stores ``prev_hash`` (the previous record's ``hash``, or 64 zeros for the first)
and ``hash`` = SHA-256 of the canonical JSON of every other column, ``seq`` and ``prev_hash``
included (keys sorted, no whitespace, times as ISO 8601 UTC with microseconds)::

    {"action":"release.requested","actor":"U1","after":"requested","at":"2026-11-26T12:00:00.000000+00:00",
     "before":null,"detail":"{}","environment":"production","prev_hash":"000...0",
     "release_id":1,"release_key":"R-1","seq":1,"service":"tax-api"}

An auditor can recompute it with any SQL client and ``sha256``. Editing a column, deleting a
record or moving records breaks the chain at that record, and :func:`verify_chain` says which
and why. (Cutting records off the *end* leaves a valid shorter chain; compare the head seq and
hash with a copy kept elsewhere, such as the audit channel, to catch that.)

Writers never fork the chain: the writer holds a database-wide lock from reading the last hash
to committing (``pg_advisory_xact_lock`` on PostgreSQL; the ``BEGIN IMMEDIATE`` write lock of
every writing transaction on SQLite, see storage.db). There is no API to update or delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.engine.model import AuditEntry, Release
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
# record_hash over a row tuple (columns in table order), for verify_chain's walk: the canonical
# JSON spelled out key by key in sorted order, strings escaped as json does.
_AT, _SEQ, _PREV, _HASH = (_COLUMNS.index(n) for n in ("at", "seq", "prev_hash", "hash"))
_ESCAPE = json.encoder.encode_basestring  # what json uses for ensure_ascii=False
_SPELLING = [
    (("{" if i == 0 else ",") + f'"{name}":', _COLUMNS.index(name))
    for i, name in enumerate(sorted(_HASHED))
]


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a record: every column except ``hash``, as canonical JSON."""
    fields = {name: record[name] for name in _HASHED}
    fields["at"] = _at_text(fields["at"])
    return hashlib.sha256(_ENCODER.encode(fields).encode("utf-8")).hexdigest()


def _row_hash(row: Sequence[Any]) -> str | None:
    """:func:`record_hash` of a row tuple whose values are strings, ints and None (None for
    anything else: the caller falls back to record_hash)."""
    parts = []
    for prefix, position in _SPELLING:
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
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


async def append_entries(
    conn: AsyncConnection,
    entries: Sequence[AuditEntry],
    outbox: OutboxWriter | None = None,
    release: Release | None = None,
) -> list[int]:
    """Chain and insert ``entries`` inside the caller's open writing transaction; returns their
    seqs. With ``outbox``, the audit channel's and the webhooks' rows for them are written in
    the same transaction: the caller commits them together with the change they describe."""
    if not entries:
        return []
    if conn.dialect.name == "postgresql":
        # Held to commit: the next writer reads our last hash, never the one before it.
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(AUDIT_LOCK_KEY)))
    last = (
        await conn.execute(
            sa.select(audit_events.c.seq, audit_events.c.hash)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev_hash = (last.seq, last.hash) if last else (0, GENESIS)
    rows = []
    for entry in entries:
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
        }
        row["hash"] = prev_hash = record_hash(row)
        rows.append(row)
    await conn.execute(sa.insert(audit_events), rows)
    seqs = [r["seq"] for r in rows]
    if outbox is not None:
        await outbox.write(conn, list(zip(seqs, entries, strict=True)), release)
    return seqs


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


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :func:`verify_chain` found. ``str(report)`` is one line for people.

    ``problem`` is ``"edited"``, ``"deleted"``, ``"moved"`` or ``"replaced"``; ``reason`` says it
    in words. ``last_seq``/``last_hash`` are those of the last record known good (the head of
    the chain, when ``ok``); ``checked`` counts the records read.
    """

    ok: bool
    checked: int
    last_seq: int | None
    last_hash: str | None
    broken_seq: int | None = None
    problem: str | None = None
    reason: str | None = None

    def __str__(self) -> str:
        if self.ok:
            if self.last_seq is None:
                return "audit chain OK: no records yet"
            return (
                f"audit chain OK: {self.checked} records, last seq {self.last_seq} "
                f"(hash {self.last_hash})"
            )
        return f"audit chain BROKEN at record {self.broken_seq}: {self.reason}"


async def _moved_from(engine: AsyncEngine, row: Mapping[str, Any]) -> int | None:
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
        if candidate > 0 and candidate != seq and record_hash(moved) == row["hash"]:
            return candidate
    return None


async def _diagnose(
    engine: AsyncEngine, row: Mapping[str, Any], prev_seq: int, prev_hash: str
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
    if record_hash(row) != row["hash"]:
        origin = await _moved_from(engine, row)
        if origin is not None:
            reason = (
                f"record {seq} holds the record written as {origin} "
                "(records were reordered, swapped or renumbered)"
            )
            return seq, "moved", reason
        return seq, "edited", f"record {seq} was edited: its contents no longer match its hash"
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
    pairs: list[Any] = []
    for name in sorted(_HASHED):
        pairs += [sa.literal(name), at_text if name == "at" else audit_events.c[name]]
    return sa.func.json_object(*pairs, type_=sa.String)


async def _read_checks(
    engine: AsyncEngine, after: int, batch_size: int
) -> list[tuple[int, str, str, str | None]]:
    """(seq, prev_hash, hash, recomputed hash or None) of the records after seq ``after``.

    On SQLite the database spells out each record's canonical JSON and only its digest is
    computed here; elsewhere (or if SQLite cannot) the rows are read whole and hashed here.
    None means "could not recompute quickly": the caller reads that record whole.
    """
    window = sa.and_(audit_events.c.seq > after)
    async with reading(engine) as conn:
        if conn.dialect.name == "sqlite":
            try:
                result = await conn.execute(
                    sa.select(
                        audit_events.c.seq,
                        audit_events.c.prev_hash,
                        audit_events.c.hash,
                        _sqlite_canonical(),
                    )
                    .where(window)
                    .order_by(audit_events.c.seq)
                    .limit(batch_size)
                )
                sha256 = hashlib.sha256
                return [
                    (seq, prev, stored, sha256(text.encode("utf-8")).hexdigest() if text else None)
                    for seq, prev, stored, text in result.all()
                ]
            except sa.exc.DBAPIError:
                pass  # e.g. a value SQLite's JSON cannot hold: read the rows whole
        columns: list[Any] = list(audit_events.columns)
        if conn.dialect.name == "sqlite":
            columns[_AT] = _raw_at()
        result = await conn.execute(
            sa.select(*columns).where(window).order_by(audit_events.c.seq).limit(batch_size)
        )
        return [(row[_SEQ], row[_PREV], row[_HASH], _row_hash(row)) for row in result.all()]


async def verify_chain(engine: AsyncEngine, batch_size: int = 5000) -> ChainReport:
    """Walk the chain in seq order and stop at the first record that breaks it.

    Needs only the database (works with the bot stopped) and constant memory: batches are
    read by keyset on seq, the next one while the current one is checked. A record that does
    not check out quickly is read whole and judged by :func:`record_hash` and the diagnosis.
    """
    checked = 0
    # The last two good records: a "replaced" verdict condemns the later of them.
    good: list[tuple[int, str]] = [(0, GENESIS)]
    prev_seq, prev_hash = good[-1]
    pending: asyncio.Task[list[tuple[int, str, str, str | None]]] | None = asyncio.ensure_future(
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
            for seq, prev, stored, digest in checks:
                checked += 1
                if seq == prev_seq + 1 and prev == prev_hash and digest == stored:
                    good = [good[-1], (seq, stored)]
                    prev_seq, prev_hash = seq, stored
                    continue
                verdict = None
                row = await _read_record(engine, seq)
                if row is None:  # deleted while we looked: judge by what remains
                    continue
                if not (
                    seq == prev_seq + 1
                    and row["prev_hash"] == prev_hash
                    and record_hash(row) == row["hash"]
                ):
                    verdict = await _diagnose(engine, row, prev_seq, prev_hash)
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
                    )
                good = [good[-1], (seq, row["hash"])]
                prev_seq, prev_hash = seq, row["hash"]
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await pending
    last_seq, last_hash = good[-1]
    return ChainReport(True, checked, last_seq or None, last_hash if last_seq else None)
