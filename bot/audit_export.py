"""``releasebot audit export``: the audit trail as JSON lines or CSV, streamed in batches."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from typing import Any, TextIO

from storage.audit import canonical_json, iter_audit
from storage.db import create_engine

COLUMNS = [
    "seq",
    "at",
    "actor",
    "action",
    "release_id",
    "release_key",
    "service",
    "environment",
    "before",
    "after",
    "detail",
    "prev_hash",
    "hash",
    "key_id",  # which key a keyed record's HMAC is under (None: plain SHA-256)
]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")  # as the hashed text spells it
    return value


async def export(url: str, fmt: str, since: datetime | None, out: TextIO) -> int:
    """Write every record (at or after ``since``) to ``out``; returns how many."""
    engine = create_engine(url)
    count = 0
    try:
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(COLUMNS)
        async for row in iter_audit(engine, since):
            record = {k: _plain(row.get(k)) for k in COLUMNS}
            if writer is not None:
                # The stored text, byte for byte, so the hash can be recomputed from the file.
                detail = record["detail"]
                record["detail"] = detail if isinstance(detail, str) else canonical_json(detail)
                writer.writerow([record[k] for k in COLUMNS])
            else:
                out.write(json.dumps(record, sort_keys=True, default=str) + "\n")
            count += 1
    finally:
        await engine.dispose()
    return count
