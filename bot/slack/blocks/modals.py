"""Modals the bot opens."""

from __future__ import annotations

from typing import Any

from bot.slack import ids
from bot.slack.blocks.common import clip


def reject_modal(release_key: str, value: str) -> dict[str, Any]:
    """Asks why a release is rejected; ``value`` (release and version) rides in metadata."""
    return {
        "type": "modal",
        "callback_id": ids.REJECT_MODAL,
        "private_metadata": value,
        "title": {"type": "plain_text", "text": clip(f"Reject {release_key}", 24)},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": ids.REJECT_REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why is it rejected?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.REJECT_REASON_INPUT,
                    "multiline": True,
                    "max_length": 500,
                },
            }
        ],
    }
