"""Webhook events and bodies as pure functions: which actions are events, who gets what, the
backoff between attempts, and the signatures (the Standard Webhooks one against the
specification's reference library)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook as ReferenceWebhook

from bot.config import Webhook
from bot.engine.model import AuditEntry, Release
from bot.engine.states import State
from bot.webhooks.payloads import EVENTS, body, event_for, payload_for
from bot.webhooks.sender import backoff, sign, standard_signature, verify

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _hook(**changes: object) -> Webhook:
    values: dict[str, object] = {
        "name": "ci",
        "url": "https://ci.example.com/hook",
        "events": ["requested", "approved", "step", "succeeded", "rolled_back", "failed"],
        "secret_env": "CI_SECRET",
    }
    values.update(changes)
    return Webhook.model_validate(values)


PAGERDUTY = _hook(
    name="pd",
    url="https://events.pagerduty.com/v2/enqueue",
    events=["rolled_back"],
    format="pagerduty",
    routing_key_env="PD_KEY",
)

RELEASE = Release(
    service="tax-api",
    environment="production",
    script="tax-api",
    version_id="0b1c2d3e-aaaa-bbbb-cccc-000000000001",
    version_tag="v1.4.2",
    stable_version_id="9f8e7d6c-aaaa-bbbb-cccc-000000000000",
    requested_by="U0CAROL",
    policy="production",
    state=State.ROLLED_BACK,
    outcome="health gate failed at 10%: error rate 4.0% > 1.0%",
    id=42,
)


def _entry(action: str, actor: str = "releasebot", **detail: object) -> AuditEntry:
    return AuditEntry(
        actor=actor,
        action=action,
        at=AT,
        release_id=42,
        release_key="R-42",
        after="rolled_back",
        detail=dict(detail),
    )


def test_audit_actions_map_to_events() -> None:
    assert EVENTS == {
        "release.requested": "requested",
        "release.approved": "approved",
        "release.auto_approved": "approved",
        "release.step_deployed": "step",
        "release.succeeded": "succeeded",
        "release.rolled_back": "rolled_back",
        "release.failed": "failed",
    }
    for other in ("release.started", "release.next_step", "gate.passed", "refused", "lock.set"):
        assert event_for(other) is None


def test_a_webhook_gets_only_the_events_it_subscribed_to() -> None:
    entry = _entry("release.succeeded")
    assert payload_for(_hook(events=["failed"]), "succeeded", RELEASE, entry) is None
    payload = payload_for(_hook(events=["succeeded"]), "succeeded", RELEASE, entry)
    assert payload is not None and payload["event"] == "succeeded"


def test_the_releasebot_format() -> None:
    entry = _entry("release.rolled_back", outcome="bad", to_version_id="9f8e", at=AT)
    assert payload_for(_hook(), "rolled_back", RELEASE, entry) == {
        "event": "rolled_back",
        "action": "release.rolled_back",
        "release": {"id": 42, "key": "R-42", "kind": "deploy", "strategy": "immediate"},
        "service": "tax-api",
        "environment": "production",
        "script": "tax-api",
        "version": {"id": "0b1c2d3e-aaaa-bbbb-cccc-000000000001", "tag": "v1.4.2"},
        "stable_version_id": "9f8e7d6c-aaaa-bbbb-cccc-000000000000",
        "state": "rolled_back",
        "actor": "releasebot",
        "at": "2026-11-26T12:00:00Z",
        "detail": {"outcome": "bad", "to_version_id": "9f8e", "at": "2026-11-26 12:00:00+00:00"},
    }


def test_pagerduty_pages_on_automatic_rollbacks_only() -> None:
    auto = _entry(
        "release.rolled_back",
        outcome=RELEASE.outcome,
        to_version_id=RELEASE.stable_version_id,
        deployment_id="dep-9",
        time_to_rollback_s=1.25,
    )
    event = payload_for(PAGERDUTY, "rolled_back", RELEASE, auto)
    assert event == {
        "event_action": "trigger",
        "dedup_key": "R-42-rollback",
        "payload": {
            "summary": "R-42 tax-api v1.4.2 rolled back in production: "
            "health gate failed at 10%: error rate 4.0% > 1.0%",
            "source": "tax-api",
            "severity": "critical",
            "timestamp": "2026-11-26T12:00:00Z",
            "component": "tax-api",
            "group": "production",
            "custom_details": {
                "release": "R-42",
                "release_id": 42,
                "service": "tax-api",
                "environment": "production",
                "script": "tax-api",
                "version_id": "0b1c2d3e-aaaa-bbbb-cccc-000000000001",
                "version_tag": "v1.4.2",
                "rolled_back_to": "9f8e7d6c-aaaa-bbbb-cccc-000000000000",
                "reason": "health gate failed at 10%: error rate 4.0% > 1.0%",
                "deployment_id": "dep-9",
                "time_to_rollback_s": 1.25,
                "requested_by": "U0CAROL",
            },
        },
    }
    by_hand = _entry("release.rolled_back", actor="U0ALICE")
    assert payload_for(PAGERDUTY, "rolled_back", RELEASE, by_hand) is None
    assert payload_for(PAGERDUTY, "failed", RELEASE, _entry("release.failed")) is None

    raw = body(PAGERDUTY, event, "the-routing-key")
    sent = json.loads(raw)
    assert list(sent)[:2] == ["routing_key", "event_action"]
    assert sent["routing_key"] == "the-routing-key"
    assert b" " not in raw.split(b'"summary"')[0]  # compact JSON


def test_a_long_summary_is_cut_to_pagerdutys_limit() -> None:
    long = RELEASE.copy(outcome="x" * 2000)
    event = payload_for(PAGERDUTY, "rolled_back", long, _entry("release.rolled_back"))
    assert event is not None
    assert len(event["payload"]["summary"]) == 1024
    assert event["payload"]["summary"].endswith("…")


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    base, cap = timedelta(seconds=5), timedelta(minutes=15)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (9, 900), (20, 900)]:
        waits = [backoff(attempt, base, cap, rng) for _ in range(50)]
        assert all(timedelta(seconds=ceiling / 2) <= w <= timedelta(seconds=ceiling) for w in waits)
        assert len(set(waits)) > 1  # jittered
    assert backoff(1, base, cap, rng, retry_after=120) == timedelta(seconds=120)
    assert backoff(1, base, cap, rng, retry_after=86_400) == timedelta(hours=1)
    assert backoff(5, base, cap, rng, retry_after=1) >= timedelta(seconds=40)


def test_signature_is_the_hex_hmac_of_the_raw_body() -> None:
    raw = b'{"event":"succeeded"}'
    want = hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert sign("s3cret", raw) == f"sha256={want}"
    assert verify("s3cret", raw, f"sha256={want}")
    assert not verify("s3cret", raw + b"\n", f"sha256={want}")
    assert not verify("other", raw, f"sha256={want}")


def test_the_standard_signature_is_the_one_the_reference_library_makes() -> None:
    key = bytes(range(7, 39))
    secret = "whsec_" + base64.b64encode(key).decode()
    raw = '{"event":"succeeded","note":"café"}'.encode()
    ours = standard_signature([key], "17", 1795694400, raw)
    assert ours == ReferenceWebhook(secret).sign("17", datetime.fromtimestamp(1795694400, UTC), raw)
    signed = b"17.1795694400." + raw
    assert ours == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # several keys (a rotation): one signature each, newest first, space separated
    other = bytes(range(50, 82))
    both = standard_signature([key, other], "17", 1795694400, raw)
    assert both == f"{ours} {standard_signature([other], '17', 1795694400, raw)}"
