"""The audit key's handling: what a key id is, what an unreadable key says (never the key),
what the settings scrub from logs, and which texts read as a checkpoint."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.settings import Settings
from storage.audit_keys import AuditKey, AuditKeyError, load_key
from storage.checkpoints import checkpoint_line, make_checkpoint, parse_checkpoint

KEY = AuditKey(b"unit-test-audit-key-0123456789")


def test_the_key_id_is_an_hmac_of_a_label_not_a_hash_of_the_key() -> None:
    secret = b"unit-test-audit-key-0123456789"
    label = hmac.new(secret, b"releasebot audit key id", hashlib.sha256).hexdigest()[:8]
    assert KEY.key_id == label
    assert KEY.key_id != hashlib.sha256(secret).hexdigest()[:8]
    assert "0123456789" not in repr(KEY)


def test_a_key_that_starts_with_at_is_never_printed_in_the_error() -> None:
    secret = "@not-a-path-but-the-key-itself-5f2e"
    with pytest.raises(AuditKeyError) as caught:
        load_key(secret)
    assert secret[1:] not in str(caught.value)
    assert "names a file" in str(caught.value)
    settings = Settings(releasebot_audit_key=SecretStr(secret))
    problems = settings.audit_key_problems()
    assert problems and all(secret[1:] not in p for p in problems)
    # and should it reach a log anyway, both spellings are scrubbed
    assert {secret, secret[1:]} <= set(settings.secrets())


def test_a_key_file_is_read_and_its_text_is_scrubbed(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    path.write_text("file-held-audit-key-a1b2c3d4e5\n")
    settings = Settings(releasebot_audit_key=SecretStr(f"@{path}"))
    key = settings.audit_key()
    assert key is not None and key.key_id == AuditKey(b"file-held-audit-key-a1b2c3d4e5").key_id
    assert "file-held-audit-key-a1b2c3d4e5" in settings.secrets()


def _line(**changes: object) -> str:
    cp = make_checkpoint(7, "ab" * 32, datetime(2026, 12, 4, tzinfo=UTC), KEY)
    cp.update(changes)
    return checkpoint_line(cp)


def test_a_checkpoint_line_reads_back_as_it_was_made() -> None:
    cp = parse_checkpoint("audit checkpoint " + _line())
    assert cp is not None and cp["seq"] == 7 and cp["key_id"] == KEY.key_id


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": True},
        {"seq": 0},
        {"seq": -3},
        {"seq": "7"},
        {"seq": 7.0},
        {"hash": 12},
        {"key_id": None},
        {"sig": ["x"]},
        {"at": {"when": "now"}},
        {"type": "something.else"},
    ],
)
def test_texts_of_the_wrong_shape_are_not_checkpoints(changes: dict[str, object]) -> None:
    assert parse_checkpoint(_line(**changes)) is None


@pytest.mark.parametrize(
    "text", ["", "no json here", "{", "{" * 100_000 + "}" * 100_000, '{"type": 1}', "[1, 2]"]
)
def test_odd_texts_are_not_checkpoints_and_do_not_raise(text: str) -> None:
    assert parse_checkpoint(text) is None
