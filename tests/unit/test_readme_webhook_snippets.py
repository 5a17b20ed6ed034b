"""The README's two webhook verification snippets, run as written against a delivery signed by
the bot: both accept it, and both turn away a changed id, a changed body and an old timestamp."""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from bot.webhooks import standard_signature

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def _snippets() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Outgoing webhooks") : text.index("## Configuration")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


class Rejected(Exception):
    pass


def _delivery(msg_id: str = "17", age: int = 0, body: bytes = b'{"event":"succeeded"}') -> Any:
    stamp = int(time.time()) - age
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": standard_signature([key], msg_id, stamp, body),
    }
    return body, headers


def _by_hand(raw_body: bytes, headers: dict[str, str]) -> bool:
    def reject() -> None:
        raise Rejected

    try:
        exec(
            _snippets()[1],
            {"secret": SECRET, "headers": headers, "raw_body": raw_body, "reject": reject},
        )
    except Rejected:
        return False
    return True


def _with_library(raw_body: bytes, headers: dict[str, str]) -> bool:
    namespace: dict[str, Any] = {"seen": lambda _id: False}
    os.environ["RELEASEBOT_WAREHOUSE_SECRET"] = SECRET
    try:
        exec(_snippets()[0], namespace)
        return namespace["receive"](raw_body, headers) is not None
    finally:
        del os.environ["RELEASEBOT_WAREHOUSE_SECRET"]


def test_the_readme_has_both_snippets() -> None:
    library, by_hand = _snippets()
    assert "Webhook(" in library and "hmac.compare_digest" in by_hand


@pytest.mark.parametrize("check", [_by_hand, _with_library])
def test_a_signed_delivery_verifies_and_tampered_ones_do_not(check: Any) -> None:
    body, headers = _delivery()
    assert check(body, headers)
    assert not check(body + b" ", headers)
    assert not check(body, headers | {"webhook-id": "18"})
    assert not check(*_delivery(age=600))
