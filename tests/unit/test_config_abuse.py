"""Hostile config files: clear errors, in bounded time and memory."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "releasebot.example.yml"


def _bomb(levels: int = 12, width: int = 10) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_an_anchor_bomb_is_refused_quickly_without_building_it(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(_bomb())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert time.monotonic() - started < 2
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 100_000
    assert "anchors and aliases" in err.value.problems[0]


def test_ordinary_anchors_still_work(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("policies:\n", "x-bake: &bake 5m\npolicies:\n", 1)
    path = tmp_path / "anchors.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:  # x-bake is an unknown top-level key
        load_config(path)
    assert any("x-bake: unknown key" in p for p in err.value.problems)


def test_huge_values_are_clear_errors(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["policies"]["production"]["approvals_required"] = 10**30
    data["policies"]["production"]["rollout"]["steps"] = list(range(1, 101))
    data["policies"]["production"]["rollout"]["bake"] = "9" * 400 + "h"
    path = tmp_path / "huge.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    joined = "\n".join(err.value.problems)
    assert "policies.production.approvals_required" in joined
    assert "policies.production.rollout.steps" in joined
    assert "policies.production.rollout.bake" in joined


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    patch=st.dictionaries(
        st.sampled_from(
            ["slack", "cloudflare", "policies", "services", "freezes", "webhooks", "extra"]
        ),
        yaml_values,
        max_size=3,
    )
)
def test_fuzzed_configs_give_errors_with_places_never_tracebacks(
    tmp_path: Path, patch: dict
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(patch)
    path = tmp_path / "fuzz.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        load_config(path)
    except ConfigError as err:
        assert err.problems and all(p.startswith(str(path)) for p in err.problems)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=400))
def test_arbitrary_text_gives_a_clear_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "text.yml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path)
