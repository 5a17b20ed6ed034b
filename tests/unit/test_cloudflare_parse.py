"""Cloudflare JSON → domain records, and the request shapes the client sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.cloudflare import parse
from bot.cloudflare.shapes import check_split, more_pages, short_message
from bot.engine.errors import EdgeRejected
from bot.engine.model import VersionShare


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-11-08T17:19:29.176266Z", datetime(2022, 11, 8, 17, 19, 29, 176266, tzinfo=UTC)),
        ("2022-11-08T17:19:29.176266123Z", datetime(2022, 11, 8, 17, 19, 29, 176266, tzinfo=UTC)),
        ("2022-11-08T17:19:29Z", datetime(2022, 11, 8, 17, 19, 29, tzinfo=UTC)),
        ("2022-11-08T17:19:29", datetime(2022, 11, 8, 17, 19, 29, tzinfo=UTC)),
        (
            "2022-11-08T19:19:29+02:00",
            datetime(2022, 11, 8, 19, 19, 29, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_parse_time_is_timezone_aware(text: str, expected: datetime) -> None:
    parsed = parse.parse_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is not None


def test_parse_time_absent_and_bad() -> None:
    assert parse.parse_time(None) is None
    assert parse.parse_time("") is None
    with pytest.raises(ValueError, match="not a timestamp"):
        parse.parse_time("yesterday")


def test_format_time_is_utc_whole_seconds() -> None:
    local = datetime(2026, 3, 1, 10, 0, 5, 999999, tzinfo=timezone(timedelta(hours=1)))
    assert parse.format_time(local) == "2026-03-01T09:00:05Z"


def test_version_reads_annotations_beside_metadata() -> None:
    item = {
        "id": "18f97339-c287-4872-9bdd-e2135c07ec12",
        "number": 7,
        "metadata": {
            "author_email": "ana@example.com",
            "created_on": "2026-11-01T08:00:00.000001Z",
            "source": "wrangler",
            # annotations inside metadata are not where Cloudflare puts them
            "annotations": {"workers/tag": "wrong"},
        },
        "annotations": {"workers/tag": "v2.0.0", "workers/message": "Big one"},
    }
    version = parse.version(item)
    assert (version.tag, version.message, version.number) == ("v2.0.0", "Big one", 7)
    assert version.author_email == "ana@example.com"
    assert version.created_on == datetime(2026, 11, 1, 8, 0, 0, 1, tzinfo=UTC)


def test_version_without_annotations_or_metadata() -> None:
    version = parse.version({"id": "abc"})
    assert (version.tag, version.message, version.created_on, version.number) == (
        None,
        None,
        None,
        None,
    )
    with pytest.raises(ValueError, match="no id"):
        parse.version({"number": 1})


def test_deployment() -> None:
    deployment = parse.deployment(
        {
            "id": "dc78f0bc-05c5-46b7-bb4e-137f55930378",
            "created_on": "2026-11-01T08:00:00Z",
            "source": "api",
            "strategy": "percentage",
            "author_email": "bot@example.com",
            "annotations": {"workers/message": "canary"},
            "versions": [
                {"version_id": "new", "percentage": 10},
                {"version_id": "old", "percentage": 90.0},
            ],
        }
    )
    assert deployment.versions == (VersionShare("new", 10.0), VersionShare("old", 90.0))
    assert deployment.message == "canary"
    assert deployment.share_of("new") == 10
    with pytest.raises(ValueError, match="lists no versions"):
        parse.deployment({"id": "x", "versions": []})
    with pytest.raises(ValueError, match="without id or percentage"):
        parse.deployment({"id": "x", "versions": [{"version_id": "a"}]})


def test_metrics_sum_rows_per_version_and_skip_unattributed() -> None:
    def row(vid: str | None, requests: int, errors: int, p99: float) -> dict:
        return {
            "sum": {"requests": requests, "errors": errors},
            "quantiles": {"cpuTimeP50": 1.0, "cpuTimeP99": p99},
            "dimensions": {"scriptVersion": vid},
        }

    data = {
        "viewer": {
            "accounts": [
                {
                    "workersInvocationsAdaptive": [
                        row("a", 100, 1, 5.0),
                        row("a", 50, 2, 9.0),
                        row("b", 10, 0, 3.0),
                        row(None, 999, 999, 1.0),
                    ]
                }
            ]
        }
    }
    metrics = parse.metrics(data)
    assert set(metrics) == {"a", "b"}
    assert (metrics["a"].requests, metrics["a"].errors) == (150, 3)
    assert metrics["a"].cpu_time_p99_us == 9.0
    assert metrics["a"].error_rate == pytest.approx(0.02)


def test_metrics_shape_errors() -> None:
    with pytest.raises(ValueError):
        parse.metrics(None)
    with pytest.raises(ValueError):
        parse.metrics({"viewer": {"accounts": "nope"}})


def test_split_body_sends_whole_numbers_as_integers() -> None:
    body = parse.split_body([VersionShare("a", 12.5), VersionShare("b", 87.5)])
    assert body == [
        {"version_id": "a", "percentage": 12.5},
        {"version_id": "b", "percentage": 87.5},
    ]
    assert parse.split_body([VersionShare("a", 100.0)])[0]["percentage"] == 100
    assert isinstance(parse.split_body([VersionShare("a", 100.0)])[0]["percentage"], int)


def test_check_split_accepts_float_noise_and_refuses_the_rest() -> None:
    third = 100 / 3
    assert len(check_split([VersionShare("a", third), VersionShare("b", 100 - third)])) == 2
    assert len(check_split([VersionShare("a", 33.3335), VersionShare("b", 66.6665)])) == 2
    with pytest.raises(EdgeRejected, match=r"add up to 100\.01%"):
        check_split([VersionShare("a", 50.01), VersionShare("b", 50)])
    with pytest.raises(EdgeRejected, match="between 0% and 100%"):
        check_split([VersionShare("a", 120)])
    # a version at 0% is in the deployment without traffic (the smoke test)
    assert len(check_split([VersionShare("a", 0), VersionShare("b", 100)])) == 2


def test_short_message() -> None:
    assert short_message("deploy  v1\nnow") == "deploy v1 now"
    long = "x" * 80
    assert len(short_message(long)) == 50
    assert short_message(long).endswith("…")


def test_more_pages() -> None:
    info = {"result_info": {"page": 1, "per_page": 50, "count": 50, "total_count": 120}}
    assert more_pages(info, 1, 50) is True
    assert more_pages(info, 3, 20) is False
    assert more_pages({"result_info": {"total_pages": 2}}, 1, 10) is True
    assert more_pages({}, 1, 50) is True  # a full page without result_info: ask for the next
    assert more_pages({}, 2, 3) is False
