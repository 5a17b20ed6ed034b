"""Rollback rules: which version to go back to, and Cloudflare's refusals in plain words.

>>> from bot.engine.model import Deployment, VersionShare
>>> previous_stable([
...     Deployment("d2", (VersionShare("new", 10), VersionShare("old", 90))),
...     Deployment("d1", (VersionShare("old", 100),)),
... ])
'old'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.engine.model import Deployment

# Cloudflare error codes a rollback can meet (see the Cloudflare API notes).
SECRETS_CHANGED = 10220  # secrets changed since the target version; needs ?force=true
NOT_FOUND = 10007  # the version is gone, or older than the deployable window

DEPLOYABLE_VERSIONS = 100  # Cloudflare deploys only the most recent 100 uploaded versions

_TOO_OLD = re.compile(r"not found|no longer|too old|older than|most recent|last 100", re.I)
_MIGRATION = re.compile(r"migrat", re.I)
_BINDING = re.compile(r"binding|namespace|bucket|queue", re.I)
_QUOTE_MAX = 300


def previous_stable(
    deployments: Sequence[Deployment], current_version_id: str | None = None
) -> str | None:
    """The version to roll back to, chosen the way ``wrangler rollback`` chooses it.

    Newest deployment first (by ``created_on``; undated ones keep their listed order after the
    dated ones), the first one is what serves now and is skipped; the answer is the version of
    the first older deployment that had one version at 100%, other than the version serving
    100% now and other than ``current_version_id`` (the version being rolled back). A split
    in between (a canary) is passed over. None when there is no such deployment.

    >>> from bot.engine.model import Deployment, VersionShare
    >>> previous_stable([Deployment("d1", (VersionShare("v1", 100),))]) is None
    True
    """
    ordered = _newest_first(deployments)
    if not ordered:
        return None
    current, older = ordered[0], ordered[1:]
    excluded = {v for v in (_full_version(current), current_version_id) if v}
    for deployment in older:
        version = _full_version(deployment)
        if version is not None and version not in excluded:
            return version
    return None


def refusal_in_words(
    codes: Sequence[int],
    message: str,
    target_label: str,
    *,
    force_allowed: bool = False,
    bookmark_release_key: str | None = None,
    command: str = "/release",
) -> str:
    """Why Cloudflare refused to put ``target_label`` back, and what can be done instead.

    ``force_allowed`` says whether the policy lets the bot repeat a rollback with
    ``force`` after secrets changed; ``bookmark_release_key`` names the release whose D1
    bookmark exists, so the restore command can be offered. Every answer says that a Worker
    rollback leaves D1 data as it is.

    >>> refusal_in_words([10007], "version not found", "v1.4.1").split(":")[0]
    'Cloudflare cannot deploy v1.4.1 any more'
    """
    quoted = _quote(message)
    if SECRETS_CHANGED in codes:
        text = (
            f"Cloudflare refused to put {target_label} back because secrets changed since "
            f"that version was deployed (code {SECRETS_CHANGED}): it would run with today's "
            "secrets, so going back needs a forced deployment."
        )
        if quoted:
            text += f" Cloudflare said: {quoted}."
        if force_allowed:
            text += " This policy allows a forced rollback, so it can be retried with force."
        else:
            text += (
                " This policy does not allow forced rollbacks; roll forward instead to a "
                f"named version that works with the current secrets, with `{command} deploy`."
            )
    elif _MIGRATION.search(message):
        text = (
            f"Cloudflare refused to put {target_label} back: a Durable Object migration "
            "ran after that version, and a Worker cannot be rolled back across a migration. "
            f"Roll forward with a version built for the migrated classes, with `{command} "
            f"deploy`. Cloudflare said: {quoted}."
        )
    elif _BINDING.search(message):
        text = (
            f"Cloudflare refused to put {target_label} back: it binds a resource (a KV "
            "namespace, R2 bucket, queue or similar) that has since been deleted or changed. "
            "Recreate the resource, or roll forward to a named version with "
            f"`{command} deploy`. Cloudflare said: {quoted}."
        )
    elif NOT_FOUND in codes or _TOO_OLD.search(message):
        text = (
            f"Cloudflare cannot deploy {target_label} any more: only the "
            f"{DEPLOYABLE_VERSIONS} most recent versions can be deployed; roll forward to a "
            f"named version with `{command} deploy`."
        )
    else:
        listed = ", ".join(str(c) for c in codes)
        code = f" (code {listed})" if listed else ""
        said = quoted or "no reason given"
        text = f"Cloudflare refused to put {target_label} back{code}: {said}."
    text += " A Worker rollback does not restore D1 data"
    if bookmark_release_key:
        text += (
            f"; the database can be put back to where it was before {bookmark_release_key} "
            f"with `{command} restore-db {bookmark_release_key}`."
        )
    else:
        text += "."
    return text


def _full_version(deployment: Deployment) -> str | None:
    """The version a deployment sends all traffic to, or None for a split."""
    for share in deployment.versions:
        if share.percentage >= 100:
            return share.version_id
    return None


def _newest_first(deployments: Sequence[Deployment]) -> list[Deployment]:
    dated = [d for d in deployments if d.created_on is not None]
    undated = [d for d in deployments if d.created_on is None]
    # sorted() is stable, so equal timestamps keep Cloudflare's order (newest first).
    dated.sort(key=lambda d: _timestamp(d.created_on), reverse=True)
    return dated + undated


def _timestamp(at: datetime | None) -> float:
    assert at is not None
    # Naive and aware datetimes cannot be compared; a naive one is taken as UTC.
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()


def _quote(message: str) -> str:
    text = " ".join(message.split())
    if not text:
        return ""
    if len(text) > _QUOTE_MAX:
        text = text[: _QUOTE_MAX - 1] + "…"
    return f"“{text}”"
