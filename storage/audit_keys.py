"""The audit chain's HMAC keys: held by the process (environment or a file), never by the database.

A key is named in each record by its key id, the first 8 hex digits of an HMAC of a fixed label
under the key (``HMAC-SHA256(key, "releasebot audit key id")``): enough to pick the right key out
of several at verification (after a rotation), and nothing that helps to guess the key itself or
to match it against a plain hash of the same secret used elsewhere::

    key = AuditKey(b"a long random secret")
    key.key_id                      # "3f1c9a0b"
    key.digest(b'{"action":...}')   # HMAC-SHA256, hex

Keys are read from a value, or from a file when the value is ``@/path/to/file`` (the file's text
without its trailing newline). :func:`read_key_text` does that and says what is wrong in words.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

# Shorter keys are refused: an HMAC key should not be guessable by trying.
MIN_KEY_LENGTH = 16
# What a key id is an HMAC of (a label of its own: the id is not a hash of the bare secret).
KEY_ID_LABEL = b"releasebot audit key id"


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class AuditKeyError(ValueError):
    """A key that cannot be used, said in words (never showing the key)."""


class AuditKey:
    """One HMAC-SHA256 key (RFC 2104). The keyed inner and outer states are computed once;
    each digest copies them (the same bytes as ``hmac.new(secret, msg, sha256)``, without its
    per-call wrapper: the verifier computes a million of them)."""

    __slots__ = ("_inner", "_outer", "key_id")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_LENGTH:
            raise AuditKeyError(f"is too short (at least {MIN_KEY_LENGTH} characters)")
        self.key_id = hmac.new(secret, KEY_ID_LABEL, hashlib.sha256).hexdigest()[:8]
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(secret).digest() if len(secret) > block else secret).ljust(
            block, b"\0"
        )
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._outer = hashlib.sha256(padded.translate(_OPAD))

    def digest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:  # never the key
        return f"AuditKey(key_id={self.key_id!r})"


def read_key_text(value: str) -> bytes:
    """The key a setting holds: ``value`` itself, or the text of the file ``@path`` names."""
    if value.startswith("@"):
        # The path is not repeated in the error: a key that happens to start with "@" would
        # otherwise be printed whole in the message.
        try:
            data = Path(value[1:]).read_bytes()
        except OSError as exc:
            raise AuditKeyError(
                "starts with @, so it names a file, and that file cannot be read "
                f"({exc.strerror or type(exc).__name__}); a key that starts with @ goes in a "
                "file of its own"
            ) from None
        return data.rstrip(b"\r\n")
    return value.encode("utf-8")


def read_key_file(path: str) -> bytes:
    """The key held by the file at ``path`` (its trailing newline dropped)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuditKeyError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    return data.rstrip(b"\r\n")


def load_key(value: str) -> AuditKey:
    """:class:`AuditKey` from a setting's value (or ``@path``); AuditKeyError says what is wrong."""
    return AuditKey(read_key_text(value))
