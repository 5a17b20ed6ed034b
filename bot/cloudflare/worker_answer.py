"""What a Worker's own answer says about itself: which version served it.

Cloudflare does not say which version answered a request; a Worker can, from its version
metadata binding (``env.CF_VERSION_METADATA.id``), in a response header or a JSON field.
The environment's ``version_header`` / ``version_field`` name where.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.engine.model import VersionReport

_ID_MAX = 64  # a version id is a UUID; anything much longer is not one


def reported_version(response: httpx.Response, report: VersionReport) -> str | None:
    """The version id ``response`` reports where ``report`` says to look (the header first),
    or None when it does not say.

    >>> answer = httpx.Response(200, json={"build": {"id": "v-1"}}, headers={"x-v": "v-2"})
    >>> reported_version(answer, VersionReport(field="build.id"))
    'v-1'
    >>> reported_version(answer, VersionReport(header="X-V", field="build.id"))
    'v-2'
    >>> reported_version(answer, VersionReport(field="build.missing")) is None
    True
    """
    if report.header:
        found = _version(response.headers.get(report.header))
        if found is not None:
            return found
    if report.field:
        try:
            node: Any = response.json()
        except ValueError:
            return None
        for part in report.field.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return _version(node)
    return None


def _version(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= _ID_MAX else None
