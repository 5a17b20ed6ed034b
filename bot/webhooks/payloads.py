"""What a webhook receives: which audit actions are events, and the JSON bodies.

Events, from the audit trail's actions:

============================  ===============
action                        event
============================  ===============
``release.requested``         ``requested``
``release.approved``,         ``approved``
``release.auto_approved``
``release.step_deployed``     ``step``
``release.succeeded``         ``succeeded``
``release.rolled_back``       ``rolled_back``
``release.failed``            ``failed``
============================  ===============

Two formats:

``releasebot`` (the default) — one object per event::

    {"event": "rolled_back", "action": "release.rolled_back",
     "release": {"id": 42, "key": "R-42", "kind": "deploy", "strategy": "gradual"},
     "service": "tax-api", "environment": "production", "script": "tax-api",
     "version": {"id": "0b1c2d3e-...", "tag": "v1.4.2"}, "stable_version_id": "9f8e...",
     "state": "rolled_back", "actor": "releasebot", "at": "2026-11-26T12:00:00Z",
     "detail": {"outcome": "health gate failed at 10%: ...", "to_version_id": "9f8e..."}}

``state`` is the release's state right after the event; ``detail`` is the audit entry's detail
(for ``step``: ``step_percent``, ``deployment_id``, ``split``).

``pagerduty`` — the preset for paging on automatic rollbacks: a PagerDuty Events API v2
*trigger*, posted to the webhook's ``url`` (``https://events.pagerduty.com/v2/enqueue``)::

    {"routing_key": "<from routing_key_env>", "event_action": "trigger",
     "dedup_key": "R-42-rollback",
     "payload": {"summary": "R-42 tax-api v1.4.2 rolled back in production: ...",
                 "source": "tax-api", "severity": "critical", "timestamp": "...",
                 "component": "tax-api", "group": "production",
                 "custom_details": {"release": "R-42", "version_id": "...", ...}}}

It sends only ``rolled_back`` events that the bot made itself (a failed health gate), not a
rollback a person asked for; ``source`` is the Worker script, ``component`` the service and
``group`` the environment. The routing key is a secret: it is added when the event is sent
and never stored in the outbox.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.config import Webhook
from bot.engine.model import AuditEntry, Release
from bot.engine.recorder import BOT_ACTOR

#: audit action -> webhook event
EVENTS: dict[str, str] = {
    "release.requested": "requested",
    "release.approved": "approved",
    "release.auto_approved": "approved",
    "release.step_deployed": "step",
    "release.succeeded": "succeeded",
    "release.rolled_back": "rolled_back",
    "release.failed": "failed",
}

PAGERDUTY_SUMMARY_MAX = 1024  # PagerDuty truncates longer summaries


def event_for(action: str) -> str | None:
    """The webhook event an audit action is, or None when it is none."""
    return EVENTS.get(action)


def timestamp(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: ``2026-11-26T12:00:00Z``."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (times and other objects become text)."""
    return json.loads(json.dumps(value, default=str))


def releasebot_payload(event: str, release: Release, entry: AuditEntry) -> dict[str, Any]:
    """The ``releasebot`` format body for ``entry`` about ``release``."""
    return _json_safe(
        {
            "event": event,
            "action": entry.action,
            "release": {
                "id": release.id,
                "key": release.key,
                "kind": release.kind.value,
                "strategy": release.strategy.value,
            },
            "service": release.service,
            "environment": release.environment,
            "script": release.script,
            "version": {"id": release.version_id, "tag": release.version_tag},
            "stable_version_id": release.stable_version_id,
            "state": entry.after or release.state.value,
            "actor": entry.actor,
            "at": timestamp(entry.at),
            "detail": entry.detail,
        }
    )


def pagerduty_payload(release: Release, entry: AuditEntry) -> dict[str, Any]:
    """The PagerDuty Events v2 trigger for an automatic rollback, without its routing key."""
    version = release.version_tag or release.version_id[:8]
    why = entry.detail.get("outcome") or release.outcome or "health gate failed"
    summary = (
        f"{release.key} {release.service} {version} rolled back in {release.environment}: {why}"
    )
    if len(summary) > PAGERDUTY_SUMMARY_MAX:
        summary = summary[: PAGERDUTY_SUMMARY_MAX - 1] + "…"
    details = {
        "release": release.key,
        "release_id": release.id,
        "service": release.service,
        "environment": release.environment,
        "script": release.script,
        "version_id": release.version_id,
        "version_tag": release.version_tag,
        "rolled_back_to": entry.detail.get("to_version_id") or release.stable_version_id,
        "reason": why,
        "deployment_id": entry.detail.get("deployment_id"),
        "time_to_rollback_s": entry.detail.get("time_to_rollback_s"),
        "requested_by": release.requested_by,
    }
    return _json_safe(
        {
            "event_action": "trigger",
            "dedup_key": f"{release.key}-rollback",
            "payload": {
                "summary": summary,
                "source": release.script,
                "severity": "critical",
                "timestamp": timestamp(entry.at),
                "component": release.service,
                "group": release.environment,
                "custom_details": {k: v for k, v in details.items() if v is not None},
            },
        }
    )


def payload_for(
    webhook: Webhook, event: str, release: Release, entry: AuditEntry
) -> dict[str, Any] | None:
    """What ``webhook`` gets for ``entry`` (an ``event``), or None when it is not for it."""
    if event not in webhook.events:
        return None
    if webhook.format == "pagerduty":
        if event != "rolled_back" or entry.actor != BOT_ACTOR:
            return None
        return pagerduty_payload(release, entry)
    return releasebot_payload(event, release, entry)


def body(webhook: Webhook, payload: dict[str, Any], routing_key: str | None = None) -> bytes:
    """The bytes to POST (and to sign): compact UTF-8 JSON; PagerDuty's gets its routing key."""
    if webhook.format == "pagerduty":
        payload = {"routing_key": routing_key or "", **payload}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
