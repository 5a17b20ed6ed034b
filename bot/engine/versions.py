"""Resolve what a person typed as ``<version>`` to exactly one uploaded Worker version."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.engine.errors import AmbiguousVersion, UnknownVersion
from bot.engine.model import WorkerVersion

MIN_PREFIX = 8


def short_ids(ids: Iterable[str | None], minimum: int = MIN_PREFIX) -> dict[str, str]:
    """Each id shortened to the shortest prefix (at least ``minimum`` characters) that no
    other of ``ids`` shares, as git abbreviates commits: two versions shown together never
    print the same prefix. Ids that are equal share their prefix; None is skipped.

    >>> short_ids(["259f4329-aaaa", "259f4329-bbbb", "1a2b3c4d-cccc"])
    {'259f4329-aaaa': '259f4329-a', '259f4329-bbbb': '259f4329-b', '1a2b3c4d-cccc': '1a2b3c4d'}
    """
    unique = list(dict.fromkeys(i for i in ids if i))
    out: dict[str, str] = {}
    for vid in unique:
        size = minimum
        while size < len(vid) and any(o != vid and o.startswith(vid[:size]) for o in unique):
            size += 1
        out[vid] = vid[:size]
    return out


def short_id(version_id: str, among: Iterable[str | None] = ()) -> str:
    """``version_id`` shortened so that it differs from every one of ``among``."""
    return short_ids([version_id, *among])[version_id] if version_id else ""


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
