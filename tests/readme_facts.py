"""What the README promises, read from its tables, and what the bot serves, read from its
``/metrics`` text: shared by the tests that hold the two together."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

README = Path(__file__).resolve().parents[1] / "README.md"


def readme() -> str:
    return README.read_text()


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    rest = text[start + len(heading) :]
    end = re.search(r"^#{2,3} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def documented_environment() -> set[str]:
    """The variables named in the first column of the README's environment table."""
    names: set[str] = set()
    for line in _section(readme(), "### Environment\n").splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return names


def documented_metrics() -> dict[str, str]:
    """metric name -> type, from the README's metrics table."""
    text = readme()
    start = text.index("<!-- metrics:")
    end = text.index("<!-- /metrics -->", start)
    found: dict[str, str] = {}
    for line in text[start:end].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`releasebot_"):
            found[cells[0].strip("`")] = cells[1]
    return found


def served_metrics(exposition: str) -> dict[str, str]:
    """metric name as scraped -> type, for the bot's own metrics (``releasebot_*``)."""
    families = [
        f for f in text_string_to_metric_families(exposition) if f.name.startswith("releasebot_")
    ]
    # prometheus_client serves each counter's and histogram's creation time as a gauge family
    # of its own (``<name>_created``): part of that metric, not another one.
    parents = {f.name for f in families if f.type in ("counter", "histogram")}
    found: dict[str, str] = {}
    for family in families:
        if family.name.endswith("_created") and family.name[: -len("_created")] in parents:
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        found[name] = family.type
    return found
