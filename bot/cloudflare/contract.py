"""Cloudflare's OpenAPI contract, which the simulator is held to.

The contract is the official 2024 subset (``openapi_subset.json``, verbatim) plus the
hand-written ``contract_additions.json`` for endpoints that subset lacks, with its few
corrections where the subset disagrees with Cloudflare's documentation. The checking itself
is ``bot.openapi.Contract``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from bot.openapi import Contract, Operation

HERE = Path(__file__).parent
SUBSET = HERE / "openapi_subset.json"
ADDITIONS = HERE / "contract_additions.json"


@cache
def load() -> Contract:
    """The merged Cloudflare contract, built once."""
    return Contract(merged_spec())


def merged_spec() -> dict[str, Any]:
    """The official subset with the hand-written paths and schemas added (never replaced) and
    the named corrections applied."""
    spec = json.loads(SUBSET.read_text())
    additions = json.loads(ADDITIONS.read_text())
    for path, item in additions["paths"].items():
        spec["paths"].setdefault(path, {})
        for method, operation in item.items():
            if method in spec["paths"][path]:
                raise ValueError(f"the additions redefine {method.upper()} {path}")
            spec["paths"][path][method] = operation
    for name, schema in additions["components"]["schemas"].items():
        if name in spec["components"]["schemas"]:
            raise ValueError(f"the additions redefine schema {name}")
        spec["components"]["schemas"][name] = schema
    for correction in additions.get("x-corrections", []):
        _correct(spec, correction)
    return spec


def _correct(spec: dict[str, Any], correction: dict[str, Any]) -> None:
    """Change one value of the official subset; the value it replaces must be what the
    correction says it was, so a newer subset that fixed it (or moved it) is noticed."""
    node: Any = spec["components"]["schemas"][correction["schema"]]
    *parents, key = correction["path"]
    for part in parents:
        node = node[part]
    where = f"{correction['schema']}/{'/'.join(correction['path'])}"
    if node.get(key) != correction["was"]:
        raise ValueError(f"the correction of {where} expects {correction['was']!r}")
    node[key] = correction["value"]


__all__ = ["ADDITIONS", "SUBSET", "Contract", "Operation", "load", "merged_spec"]
