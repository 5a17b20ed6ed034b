"""The engine's exception tree. Adapters map foreign errors onto it at their boundary.

::

    ReleaseError                      anything the engine refuses or cannot do
    ├── IllegalTransition             (state, event) not in the transition table
    ├── ConcurrentUpdate              someone else changed the release first (optimistic lock)
    ├── NotFound                      unknown release, service or environment
    ├── Refused                       a person may not do this (reason in words)
    ├── MigrationSourceError          the migration files could not be read
    ├── VersionError                  a version reference does not resolve to exactly one version
    │   ├── UnknownVersion
    │   └── AmbiguousVersion          carries the candidates
    ├── EdgeError                     the edge platform (Cloudflare) failed or refused
    │   ├── EdgeUnavailable           timeouts, 429/5xx after retries
    │   └── EdgeRejected              4xx with the platform's codes and messages
    └── SourceError                   the code host (GitHub) failed or refused
        ├── SourceUnavailable         timeouts, rate limits, 5xx after retries
        └── SourceRejected            4xx other than a rate limit (a wrong token, no such repo)
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.engine.words import Words


class ReleaseError(Exception):
    """Base of every error the engine raises on purpose; ``str()`` is fit to show a person."""


class IllegalTransition(ReleaseError):
    def __init__(self, state: str, event: str) -> None:
        super().__init__(
            f"cannot {event.replace('_', ' ')} a release that is {state.replace('_', ' ')}"
        )
        self.state = state
        self.event = event


class ConcurrentUpdate(ReleaseError):
    def __init__(self, release_key: str) -> None:
        super().__init__(f"{release_key} was changed by someone else at the same moment; try again")
        self.release_key = release_key


class NotFound(ReleaseError):
    pass


class Refused(ReleaseError):
    """An action a person may not take; the message says why.

    ``words`` keeps the people it names apart from the text, so that whoever shows it can
    mention them; ``str()`` is the plain text (ids as they are)."""

    def __init__(self, reason: Words | str) -> None:
        self.words = reason if isinstance(reason, Words) else Words((reason,))
        super().__init__(str(self.words))


class VersionError(ReleaseError):
    pass


class MigrationSourceError(ReleaseError):
    """The migration files could not be read (a missing folder, an unreadable file)."""


class UnknownVersion(VersionError):
    pass


class AmbiguousVersion(VersionError):
    def __init__(self, ref: str, candidates: Sequence[str]) -> None:
        listed = ", ".join(candidates)
        super().__init__(f"'{ref}' matches {len(candidates)} versions: {listed}; use a version id")
        self.ref = ref
        self.candidates = list(candidates)


class EdgeError(ReleaseError):
    pass


class EdgeUnavailable(EdgeError):
    """Cloudflare did not answer usefully (timeouts, 429 or 5xx after the retries).

    ``rate_limited``: every answer was Cloudflare's rate limit (429) — a busy API, never a
    verdict on the version being released."""

    def __init__(self, message: str, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


class EdgeRejected(EdgeError):
    """Cloudflare refused the request; ``codes`` are its error codes (e.g. 10220)."""

    def __init__(self, message: str, codes: Sequence[int] = (), status: int | None = None) -> None:
        super().__init__(message)
        self.codes = list(codes)
        self.status = status


class SourceError(ReleaseError):
    pass


class SourceUnavailable(SourceError):
    """GitHub did not answer usefully before the call's deadline (timeouts, 5xx, rate limits).

    ``rate_limited``: the last answers were GitHub's rate limit; ``until`` when GitHub said
    it lifts (None when it did not say)."""

    def __init__(self, message: str, *, rate_limited: bool = False, until: float | None = None):
        super().__init__(message)
        self.rate_limited = rate_limited
        self.until = until


class SourceRejected(SourceError):
    """GitHub refused the request (401, 403 without a rate limit, 404, 422...)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
