"""Resolve what a person typed as ``<version>`` to exactly one uploaded Worker version."""

from __future__ import annotations

from collections.abc import Sequence

from bot.engine.errors import AmbiguousVersion, UnknownVersion
from bot.engine.model import WorkerVersion

MIN_PREFIX = 8


def _label(v: WorkerVersion) -> str:
    return f"{v.id[:8]} ({v.tag})" if v.tag else v.id[:8]


def resolve_version(ref: str, versions: Sequence[WorkerVersion], script: str) -> WorkerVersion:
    """A full version id, a tag (``workers/tag``), or an id prefix of 8+ characters.

    >>> v = WorkerVersion(id="1a2b3c4d-0000-4000-8000-000000000001", tag="v1.4.2")
    >>> resolve_version("v1.4.2", [v], "tax-api").id[:8]
    '1a2b3c4d'
    """
    wanted = ref.strip()
    exact = [v for v in versions if v.id == wanted]
    if exact:
        return exact[0]
    tagged = [v for v in versions if v.tag is not None and v.tag == wanted]
    if len(tagged) == 1:
        return tagged[0]
    if len(tagged) > 1:
        raise AmbiguousVersion(wanted, [_label(v) for v in tagged])
    if len(wanted) >= MIN_PREFIX:
        prefixed = [v for v in versions if v.id.startswith(wanted.lower())]
        if len(prefixed) == 1:
            return prefixed[0]
        if len(prefixed) > 1:
            raise AmbiguousVersion(wanted, [_label(v) for v in prefixed])
    recent = ", ".join(_label(v) for v in versions[:5]) or "none uploaded"
    raise UnknownVersion(
        f"no version of {script} has the id or tag '{wanted}' (most recent: {recent})"
    )
