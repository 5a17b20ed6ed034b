"""Outgoing webhooks: release events for other tools, through a durable outbox.

The engine only writes rows (:class:`~bot.webhooks.outbox.SqlWebhookOutbox`, its event sink);
the scheduler sends them (:class:`~bot.webhooks.sender.WebhookSender`), so a slow or failing
receiver never holds up a release. Formats are in :mod:`bot.webhooks.payloads`.
"""

from bot.webhooks.outbox import OutboxItem, SqlWebhookOutbox
from bot.webhooks.sender import (
    Delivery,
    WebhookCredentials,
    WebhookSender,
    load_credentials,
    secret_values,
    sign,
    standard_signature,
    verify,
)

__all__ = [
    "Delivery",
    "OutboxItem",
    "SqlWebhookOutbox",
    "WebhookCredentials",
    "WebhookSender",
    "load_credentials",
    "secret_values",
    "sign",
    "standard_signature",
    "verify",
]
