"""Cloudflare's refusals and outages in words: codes, statuses and the retry summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from bot.cloudflare.failures import gave_up, rejection, times
from bot.cloudflare.transport import retry_after_seconds


def envelope(status: int, *errors: tuple[int, str]) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "success": False,
            "errors": [{"code": c, "message": m} for c, m in errors],
            "messages": [],
            "result": None,
        },
    )


def test_secrets_changed_says_force_is_needed() -> None:
    error = rejection(
        envelope(400, (10220, "Secrets have changed (API_KEY)")), "deploying v1 to tax-api"
    )
    assert error.codes == [10220] and error.status == 400
    text = str(error)
    assert text.startswith("Cloudflare refused deploying v1 to tax-api: secrets changed")
    assert "a forced deployment is needed" in text
    assert "Secrets have changed (API_KEY) (code 10220)" in text


def test_not_found() -> None:
    error = rejection(envelope(404, (10007, "This Worker does not exist")), "reading x")
    assert "not found (HTTP 404)" in str(error)
    assert error.codes == [10007]


@pytest.mark.parametrize(
    ("status", "code"), [(401, 10000), (403, 9109), (400, 10000), (403, 10023)]
)
def test_auth_errors_blame_the_token(status: int, code: int) -> None:
    error = rejection(envelope(status, (code, "Authentication error")), "listing versions")
    assert "the API token is invalid or lacks permission" in str(error)
    assert error.status == status


def test_other_refusals_keep_all_of_cloudflares_words() -> None:
    error = rejection(envelope(400, (10021, "bad field"), (10021, "another")), "deploying")
    assert str(error) == (
        "Cloudflare refused deploying (HTTP 400). "
        "Cloudflare said: bad field (code 10021); another (code 10021)."
    )
    assert error.codes == [10021, 10021]


def test_body_that_is_not_json() -> None:
    response = httpx.Response(
        403, text="<html>blocked</html>", headers={"content-type": "text/html"}
    )
    error = rejection(response, "listing versions")
    assert str(error) == (
        "Cloudflare refused listing versions with HTTP 403 and a body that is not JSON (text/html)."
    )
    assert "blocked" not in str(error)


def test_graphql_errors_without_codes() -> None:
    response = httpx.Response(200, json={"data": None, "errors": [{"message": "bad filter"}]})
    error = rejection(response, "reading analytics of tax-api")
    assert error.codes == []
    assert "bad filter" in str(error)


def test_gave_up_wording() -> None:
    assert str(gave_up(["answered 503"] * 3, "listing x")) == (
        "Cloudflare answered 503 three times while listing x; giving up for now"
    )
    mixed = str(gave_up(["answered 503", "timed out"], "deploying"))
    assert mixed.startswith("Cloudflare failed twice (answered 503, timed out) while deploying")
    assert [times(n) for n in (1, 2, 6)] == ["once", "twice", "6 times"]


def test_retry_after_seconds() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("-4") == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(later, now=now) == 30.0
