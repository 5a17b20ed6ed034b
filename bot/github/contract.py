"""GitHub's REST contract for the operations the bot reads (``openapi_subset.json``, reduced
from GitHub's published description; its ``x-subset-source`` says how), which the stand-in's
requests and answers are held to."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from bot.openapi import Contract

SUBSET = Path(__file__).parent / "openapi_subset.json"


@cache
def load() -> Contract:
    return Contract(json.loads(SUBSET.read_text()))


__all__ = ["SUBSET", "Contract", "load"]
