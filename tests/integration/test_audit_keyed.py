"""The keyed audit chain, on SQLite and PostgreSQL: an attacker with write access to the database
who edits a record and recomputes every later hash with the project's own ``record_hash`` is
caught; a rotated key leaves old and new records verifiable; without the key the links are still
checked and the verdict says authenticity was not."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from bot.cli import VERIFY_BROKEN, VERIFY_OK, VERIFY_UNAUTHENTICATED, app
from bot.engine.model import AuditEntry
from storage.audit import KEYED_ACTION, record_hash
from storage.audit_keys import AuditKey, AuditKeyError
from storage.db import create_engine, sync_url
from storage.repositories import SqlReleaseRepository
from storage.tables import audit_events

pytest_plugins = ["tests.fixtures.db"]

START = datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=UTC)
OLD_KEY = "old-audit-key-0f3a9c2e7b1d5a48"
NEW_KEY = "new-audit-key-8d2b6f1a4c9e3b70"


def _write(url: str, key: str | None, first: int, count: int) -> None:
    async def write() -> None:
        engine = create_engine(url)
        try:
            audit_key = AuditKey(key.encode()) if key is not None else None
            repo = SqlReleaseRepository(engine, audit_key=audit_key)
            for n in range(first, first + count):
                entry = AuditEntry(
                    actor="U0ALICE" if n % 2 else "U0BOB",
                    action=f"lock.set.{n}",
                    at=START + timedelta(minutes=n),
                    service="tax-api",
                    environment="production",
                    detail={"reason": f"reason {n}"},
                )
                await repo.append_audit([entry])
        finally:
            await engine.dispose()

    asyncio.run(write())


def _rows(url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.select(audit_events).order_by(audit_events.c.seq))
            return [dict(r) for r in result.mappings()]
    finally:
        engine.dispose()


def _rewrite(url: str, rows: list[dict[str, Any]]) -> None:
    engine = sa.create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for row in rows:
                values = {k: v for k, v in row.items() if k != "seq"}
                conn.execute(
                    sa.update(audit_events).where(audit_events.c.seq == row["seq"]).values(values)
                )
    finally:
        engine.dispose()


def _verify(url: str, *args: str, **env: str) -> Any:
    return CliRunner().invoke(app, ["audit", "verify", *args], env={"DATABASE_URL": url, **env})


def _key_file(tmp_path: Path, name: str, key: str) -> str:
    path = tmp_path / name
    path.write_text(key + "\n")
    return str(path)


def test_each_record_names_its_key_and_the_key_never_reaches_the_database(db_url: str) -> None:
    _write(db_url, OLD_KEY, 0, 3)
    rows = _rows(db_url)
    key = AuditKey(OLD_KEY.encode())
    assert {r["key_id"] for r in rows} == {key.key_id} and len(key.key_id) == 8
    for row in rows:
        assert row["hash"] == record_hash(row, key) != record_hash(row)
        assert OLD_KEY not in repr(row)
    result = _verify(db_url, RELEASEBOT_AUDIT_KEY=OLD_KEY)
    assert result.exit_code == VERIFY_OK, result.output
    assert result.output.startswith("audit chain OK: 3 records, last seq 3 (hash ")
    assert f"3 HMAC under key id {key.key_id}" in result.output


def test_an_edit_with_every_later_hash_recomputed_fails_naming_the_record(db_url: str) -> None:
    _write(db_url, OLD_KEY, 0, 8)
    rows = _rows(db_url)
    # The attacker: changes record 4's actor, then re-chains 4..8 with the project's own
    # record_hash (plain SHA-256: the key is not in the database).
    rows[3]["actor"] = "U0MALLORY"
    for i in range(3, len(rows)):
        rows[i]["prev_hash"] = rows[i - 1]["hash"]
        rows[i]["hash"] = record_hash(rows[i])
    _rewrite(db_url, rows[3:])
    result = _verify(db_url, RELEASEBOT_AUDIT_KEY=OLD_KEY)
    assert result.exit_code == VERIFY_BROKEN, result.output
    assert result.output.startswith(
        "audit chain BROKEN at record 4: record 4 was edited: its contents no longer match"
    )
    assert "Traceback" not in result.output


def test_a_rewrite_that_drops_the_key_id_is_caught_too(db_url: str) -> None:
    _write(db_url, OLD_KEY, 0, 6)
    rows = _rows(db_url)
    rows[2]["actor"] = "U0MALLORY"
    for i in range(2, len(rows)):
        rows[i]["key_id"] = None  # posing as records from before the chain was keyed
        rows[i]["prev_hash"] = rows[i - 1]["hash"]
        rows[i]["hash"] = record_hash(rows[i])
    _rewrite(db_url, rows[2:])
    result = _verify(db_url, RELEASEBOT_AUDIT_KEY=OLD_KEY)
    assert result.exit_code == VERIFY_BROKEN, result.output
    assert "BROKEN at record 3: record 3 is a plain SHA-256 record after keyed ones" in (
        result.output
    )


def test_plain_records_stay_verifiable_and_the_first_keyed_one_says_so(db_url: str) -> None:
    _write(db_url, None, 0, 3)  # written before the chain was keyed
    _write(db_url, OLD_KEY, 3, 2)
    rows = _rows(db_url)
    key = AuditKey(OLD_KEY.encode())
    assert [r["key_id"] for r in rows] == [None, None, None, key.key_id, key.key_id, key.key_id]
    assert rows[3]["action"] == KEYED_ACTION and key.key_id in rows[3]["detail"]
    assert '"plain_until":3' in rows[3]["detail"]
    result = _verify(db_url, RELEASEBOT_AUDIT_KEY=OLD_KEY)
    assert result.exit_code == VERIFY_OK, result.output
    assert f"3 plain SHA-256 before the key, 3 HMAC under key id {key.key_id}" in result.output


def test_a_rotated_key_old_and_new_records_verify_given_both(db_url: str, tmp_path: Path) -> None:
    _write(db_url, OLD_KEY, 0, 3)
    _write(db_url, NEW_KEY, 3, 3)
    old, new = AuditKey(OLD_KEY.encode()), AuditKey(NEW_KEY.encode())
    assert [r["key_id"] for r in _rows(db_url)] == [old.key_id] * 3 + [new.key_id] * 3
    # Both keys: from files on the command line, or the current key plus RELEASEBOT_AUDIT_KEYS.
    by_files = _verify(
        db_url,
        "--key-file",
        _key_file(tmp_path, "old.key", OLD_KEY),
        "--key-file",
        _key_file(tmp_path, "new.key", NEW_KEY),
    )
    assert by_files.exit_code == VERIFY_OK, by_files.output
    assert f"6 HMAC under key id {old.key_id}, {new.key_id}" in by_files.output
    by_env = _verify(db_url, RELEASEBOT_AUDIT_KEY=NEW_KEY, RELEASEBOT_AUDIT_KEYS=OLD_KEY)
    assert by_env.exit_code == VERIFY_OK, by_env.output
    # The new key alone leaves the old records' authenticity unchecked, and says which key.
    new_only = _verify(db_url, RELEASEBOT_AUDIT_KEY=NEW_KEY)
    assert new_only.exit_code == VERIFY_UNAUTHENTICATED, new_only.output
    assert "links OK, authenticity not checked" in new_only.output
    assert f"3 records are keyed under key id {old.key_id}, not given" in new_only.output


def test_without_the_key_the_links_are_checked_and_authenticity_is_not(db_url: str) -> None:
    _write(db_url, OLD_KEY, 0, 5)
    result = _verify(db_url)
    assert result.exit_code == VERIFY_UNAUTHENTICATED == 3, result.output
    assert result.output.startswith(
        "audit chain links OK, authenticity not checked: 5 records, last seq 5"
    )
    # The links are still checked: a record replaced wholesale breaks the next one's link.
    rows = _rows(db_url)
    rows[1]["hash"] = "f" * 64
    _rewrite(db_url, rows[1:2])
    broken = _verify(db_url)
    assert broken.exit_code == VERIFY_BROKEN, broken.output
    assert "BROKEN at record 2" in broken.output


def test_without_the_key_a_trail_rewritten_as_plain_sha256_is_not_called_authentic(
    db_url: str,
) -> None:
    """The attacker rewrites a keyed trail as plain SHA-256 records from the start: without
    a key the verifier cannot tell, and must not answer "audit chain OK" (exit 0)."""
    _write(db_url, OLD_KEY, 0, 5)
    genuine = _verify(db_url)
    rows = _rows(db_url)
    prev = "0" * 64
    for row in rows:
        row["actor"], row["key_id"], row["prev_hash"] = "U0MALLORY", None, prev
        row["hash"] = prev = record_hash(row)
    _rewrite(db_url, rows)
    forged = _verify(db_url)
    assert genuine.exit_code == forged.exit_code == VERIFY_UNAUTHENTICATED, forged.output
    assert "no record is keyed" in forged.output
    assert _verify(db_url, RELEASEBOT_AUDIT_KEY=OLD_KEY).exit_code == VERIFY_UNAUTHENTICATED


def test_an_auditor_recomputes_keyed_hashes_from_the_csv_export(db_url: str) -> None:
    """The export carries every hashed column (``key_id`` too, times to the microsecond), so
    an auditor holding the key recomputes each record's HMAC from the file alone."""
    import csv
    import io

    from bot.audit_export import COLUMNS

    _write(db_url, None, 0, 2)
    _write(db_url, OLD_KEY, 2, 3)
    key = AuditKey(OLD_KEY.encode())
    exported = CliRunner().invoke(
        app, ["audit", "export", "--format", "csv"], env={"DATABASE_URL": db_url}
    )
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert [r["key_id"] or None for r in rows] == [None, None] + [key.key_id] * 4
    for row in rows:
        fields: dict[str, Any] = {k: row[k] or None for k in COLUMNS}
        fields["seq"] = int(row["seq"])
        fields["release_id"] = int(row["release_id"]) if row["release_id"] else None
        fields["at"] = datetime.fromisoformat(row["at"])
        assert len(row["at"].split(".")[1]) >= 6  # microseconds always spelled
        mine = key if fields["key_id"] else None
        assert record_hash(fields, mine) == row["hash"], row["seq"]


def test_a_wrong_key_fails_and_a_bad_key_file_is_named(db_url: str, tmp_path: Path) -> None:
    _write(db_url, OLD_KEY, 0, 2)
    wrong = _verify(db_url, RELEASEBOT_AUDIT_KEY=NEW_KEY)
    assert wrong.exit_code == VERIFY_UNAUTHENTICATED, wrong.output
    missing = tmp_path / "missing.key"
    bad = _verify(db_url, "--key-file", str(missing))
    assert bad.exit_code == 2
    assert f"--key-file {missing}: cannot read the key file" in bad.output
    with pytest.raises(AuditKeyError, match="too short"):
        AuditKey(b"short")


@pytest.mark.parametrize("length", [16, 64, 65, 300])
def test_the_key_digest_is_standard_hmac_sha256(length: int) -> None:
    import hashlib
    import hmac

    secret = bytes(range(256))[:length] if length <= 256 else b"k" * length
    for message in (b"", b'{"action":"lock.set"}', "€".encode() * 500):
        expected = hmac.new(secret, message, hashlib.sha256).hexdigest()
        assert AuditKey(secret).digest(message) == expected


def test_sqlite_spells_each_record_as_record_text_does(tmp_path: Path) -> None:
    """verify's SQLite fast path (the canonical JSON built by the database, read straight from
    the driver) gives exactly the bytes ``record_text`` hashes, for plain and keyed records."""
    from storage.audit import _sqlite_checks, record_text
    from storage.db import reading, upgrade

    url = f"sqlite:///{tmp_path / 'spell.db'}"
    upgrade(url)
    _write(url, None, 1, 2)
    _write(url, OLD_KEY, 3, 2)
    stored = {row["seq"]: row for row in _rows(url)}

    async def read() -> list[tuple[int, str, str, str | None, str | None]]:
        engine = create_engine(url)
        try:
            async with reading(engine) as conn:
                return await _sqlite_checks(conn, 1, 10)
        finally:
            await engine.dispose()

    rows = asyncio.run(read())
    assert [row[0] for row in rows] == [2, 3, 4, 5]
    for seq, prev, hash_, key_id, text in rows:
        record = stored[seq]
        assert (prev, hash_, key_id) == (record["prev_hash"], record["hash"], record["key_id"])
        assert text is not None and text.encode() == record_text(record)
