"""Audit checkpoints: the chain's head, signed with the audit key, kept outside the database.

A checkpoint says "record ``seq`` had hash ``hash`` at ``at``", signed (HMAC-SHA256) with the
audit key it names. Posted to the audit channel, it lets a verifier prove that the stored trail
still holds every checkpointed record unchanged: cutting records off the end (record ``seq`` is
gone) and rewriting the whole trail (its hash differs) are both found, naming the checkpoint::

    cp = make_checkpoint(seq=120, record_hash="9f...", at=now, key=key)
    line = checkpoint_line(cp)          # one JSON object: an export line, and the post's text
    report = await verify_checkpoints(engine, [parse_checkpoint(line)], keys)

The signed text is the canonical JSON of every field but ``sig``. Plain data only: the line
holds digits, hex and an ISO time, nothing Slack would read as markup.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.audit import Keyring, canonical_json
from storage.audit_keys import AuditKey
from storage.db import reading
from storage.tables import audit_events

CHECKPOINT_TYPE = "releasebot.audit.checkpoint"
_FIELDS = ("type", "seq", "hash", "at", "key_id")


def _signed_text(fields: dict[str, Any]) -> bytes:
    return canonical_json({name: fields[name] for name in _FIELDS}).encode("utf-8")


def make_checkpoint(seq: int, record_hash: str, at: datetime, key: AuditKey) -> dict[str, Any]:
    """A checkpoint of the record ``seq`` (whose stored hash is ``record_hash``), signed."""
    fields: dict[str, Any] = {
        "type": CHECKPOINT_TYPE,
        "seq": seq,
        "hash": record_hash,
        "at": canonical_json(at).strip('"'),
        "key_id": key.key_id,
    }
    fields["sig"] = key.digest(_signed_text(fields))
    return fields


def signed_by(checkpoint: dict[str, Any], key: AuditKey) -> bool:
    """Whether ``checkpoint`` carries a valid signature under ``key``."""
    if checkpoint.get("key_id") != key.key_id:
        return False
    return hmac.compare_digest(key.digest(_signed_text(checkpoint)), str(checkpoint.get("sig")))


def checkpoint_line(checkpoint: dict[str, Any]) -> str:
    """The checkpoint as one line of JSON (what the audit channel shows and an export holds)."""
    return canonical_json(checkpoint)


def parse_checkpoint(text: str) -> dict[str, Any] | None:
    """The checkpoint a line or a Slack message's text holds, or None if it holds none."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        value = json.loads(text[start : text.rfind("}") + 1])
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or value.get("type") != CHECKPOINT_TYPE:
        return None
    if not all(isinstance(value.get(name), str) for name in ("hash", "at", "key_id", "sig")):
        return None
    seq = value.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return None
    return {name: value[name] for name in (*_FIELDS, "sig")}


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    """What :func:`verify_checkpoints` found; ``str(report)`` is one line for people."""

    ok: bool
    checked: int
    unchecked: int = 0
    broken: dict[str, Any] | None = None
    reason: str | None = None
    # The key ids of the unchecked checkpoints: keys not given, or not the bot's keys at all.
    unknown_key_ids: tuple[str, ...] = ()
    # Messages that read as checkpoints but were not posted by the bot (skipped, not trusted).
    foreign: int = 0

    def __str__(self) -> str:
        if not self.ok and self.broken is not None:
            return (
                f"audit checkpoints BROKEN at the checkpoint of seq {self.broken['seq']} "
                f"({self.broken['at']}): {self.reason}"
            )
        tail = ""
        if self.unchecked:
            ids = ", ".join(self.unknown_key_ids)
            tail += (
                f"; {self.unchecked} signed under key ids not given ({ids}), not checked: "
                "if every key was given, those were not made by the bot"
            )
        if self.foreign:
            tail += f"; {self.foreign} look-alike messages not posted by the bot were skipped"
        if self.checked == 0 and self.unchecked == 0:
            return f"audit checkpoints: none given{tail}"
        return f"audit checkpoints OK: {self.checked} match the stored trail{tail}"


async def verify_checkpoints(
    engine: AsyncEngine,
    checkpoints: Iterable[dict[str, Any]],
    keys: Sequence[AuditKey],
    foreign: int = 0,
) -> CheckpointReport:
    """Check each checkpoint's signature, then that the stored record ``seq`` still has the
    hash it names; stop at the first (lowest seq) that fails. A checkpoint signed under a key
    not given is counted as unchecked (its signature could be anyone's). ``foreign`` is how many
    look-alike messages the caller skipped because the bot did not post them (for the report)."""
    by_id = {key.key_id: key for key in keys}
    keyring = Keyring(keys)
    checked = 0
    unknown: list[str] = []

    def report(
        ok: bool, cp: dict[str, Any] | None = None, reason: str | None = None
    ) -> CheckpointReport:
        return CheckpointReport(
            ok, checked, len(unknown), cp, reason, tuple(dict.fromkeys(unknown)), foreign
        )

    for cp in sorted(checkpoints, key=lambda c: int(c["seq"])):
        key = by_id.get(cp["key_id"])
        if key is None:
            unknown.append(str(cp["key_id"]))
            continue
        if not signed_by(cp, key):
            return report(False, cp, "its signature does not match (not made by the bot)")
        async with reading(engine) as conn:
            row = (
                (await conn.execute(sa.select(audit_events).where(audit_events.c.seq == cp["seq"])))
                .mappings()
                .first()
            )
            head = await conn.scalar(sa.select(sa.func.max(audit_events.c.seq)))
        stored = row["hash"] if row is not None else None
        if row is None:
            reason = (
                f"record {cp['seq']} is no longer stored: the trail ends at seq {head or 0} "
                "(records were cut off the end)"
            )
            return report(False, cp, reason)
        if stored != cp["hash"]:
            reason = (
                f"record {cp['seq']} now has a different hash: the trail was rewritten "
                "up to or past this point"
            )
            return report(False, cp, reason)
        # The hash alone is not enough: the record's content must still be what it hashes to,
        # under a key given (a record relabelled with an unknown key id keeps its hash).
        expected = keyring.expected(dict(row))
        if expected is None:
            reason = (
                f"record {cp['seq']} is keyed under key id {row['key_id']}, not given, though "
                f"its checkpoint is signed under {cp['key_id']}: its content cannot be vouched "
                "for (a possible forgery)"
            )
            return report(False, cp, reason)
        if not hmac.compare_digest(expected, str(stored)):
            reason = (
                f"record {cp['seq']} was edited: its contents no longer match the hash its "
                "checkpoint names"
            )
            return report(False, cp, reason)
        checked += 1
    return report(True)
