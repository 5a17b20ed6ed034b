"""The README's reference tables say what the code does: every setting is in the environment
table (and nothing else is), and the metrics table lists exactly the metrics served."""

from __future__ import annotations

from bot.metrics import Metrics
from bot.settings import ENVIRONMENT, Settings
from tests.readme_facts import documented_environment, documented_metrics, served_metrics


def settings_variables() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def test_every_setting_is_in_the_readme_environment_table_and_nothing_else() -> None:
    assert documented_environment() == settings_variables()


def test_run_help_describes_every_setting() -> None:
    assert set(ENVIRONMENT) == settings_variables()
    assert all(meaning.strip() for meaning in ENVIRONMENT.values())


def test_the_readme_lists_exactly_the_metrics_served() -> None:
    served = served_metrics(Metrics(process=False).exposition().decode())
    assert documented_metrics() == served
    # Prometheus conventions: counters end in _total, durations are in seconds.
    for name, kind in served.items():
        assert (kind == "counter") == name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name


def test_the_build_info_carries_the_version() -> None:
    from bot import __version__

    text = Metrics(process=False).exposition().decode()
    assert f'releasebot_build_info{{version="{__version__}"}} 1.0' in text
