"""Block Kit to HTML for the browser console: messages (header, section with text, fields and
an accessory, context, divider, actions with buttons) and modal views (input blocks).

Buttons become ``<button>`` elements carrying only what the page needs to say *which* button
was pressed (message, block and action ids); the console looks the button up again on the
server before it signs anything, so the page cannot invent actions.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from bot.dev.web_mrkdwn import Users, mrkdwn, plain_text

Block = dict[str, Any]


class BlockRenderer:
    """Renders blocks for one viewer (their timezone is used for ``<!date>`` references)."""

    def __init__(self, users: Users, tz: str = "UTC", now: datetime | None = None) -> None:
        self.users = users
        self.tz = tz
        self.now = now

    def text(self, obj: Any) -> str:
        """A composition text object (``mrkdwn`` or ``plain_text``) as HTML."""
        if not isinstance(obj, dict):
            return ""
        raw = str(obj.get("text", ""))
        if obj.get("type") == "mrkdwn":
            return mrkdwn(raw, self.users, self.tz, self.now)
        return plain_text(raw, bool(obj.get("emoji", True)))

    def mrkdwn(self, raw: str) -> str:
        return mrkdwn(raw, self.users, self.tz, self.now)

    def blocks(self, blocks: list[Block], message_key: str = "") -> str:
        """A message's blocks; ``message_key`` ties its buttons to the message."""
        return "".join(self.block(b, message_key) for b in blocks if isinstance(b, dict))

    def block(self, block: Block, message_key: str) -> str:
        kind = block.get("type")
        if kind == "header":
            title = self.text(block.get("text"))
            return f'<div class="bk-header" role="heading" aria-level="3">{title}</div>'
        if kind == "section":
            return self.section(block, message_key)
        if kind == "context":
            parts = [self.context_element(e) for e in block.get("elements", [])]
            return f'<div class="bk-context">{"".join(parts)}</div>'
        if kind == "divider":
            return '<hr class="bk-divider">'
        if kind == "actions":
            block_id = str(block.get("block_id", ""))
            elements = [self.element(e, block_id, message_key) for e in block.get("elements", [])]
            return f'<div class="bk-actions" role="group">{"".join(elements)}</div>'
        if kind == "image":
            alt = html.escape(str(block.get("alt_text", "image")))
            return f'<div class="bk-unsupported">[image: {alt}]</div>'
        if kind == "input":
            return self.input(block)
        return f'<div class="bk-unsupported">[{html.escape(str(kind))} block]</div>'

    def section(self, block: Block, message_key: str) -> str:
        parts = []
        if block.get("text"):
            parts.append(f'<div class="bk-text">{self.text(block["text"])}</div>')
        fields = block.get("fields") or []
        if fields:
            cells = "".join(f'<div class="bk-field">{self.text(f)}</div>' for f in fields)
            parts.append(f'<div class="bk-fields">{cells}</div>')
        accessory = block.get("accessory")
        if isinstance(accessory, dict):
            block_id = str(block.get("block_id", ""))
            element = self.element(accessory, block_id, message_key)
            parts.append(f'<div class="bk-accessory">{element}</div>')
        return f'<div class="bk-section">{"".join(parts)}</div>'

    def context_element(self, element: Any) -> str:
        if not isinstance(element, dict):
            return ""
        if element.get("type") == "image":
            alt = html.escape(str(element.get("alt_text", "")))
            return f'<span class="bk-unsupported">[{alt}]</span>'
        return f"<span>{self.text(element)}</span>"

    def element(self, element: Any, block_id: str, message_key: str) -> str:
        """An interactive element; buttons are live, anything else is shown for what it is."""
        if not isinstance(element, dict):
            return ""
        if element.get("type") != "button":
            kind = html.escape(str(element.get("type", "element")))
            return f'<span class="bk-unsupported">[{kind}]</span>'
        style = element.get("style")
        css = "bk-btn" + (f" bk-{style}" if style in ("primary", "danger") else "")
        label = plain_text(str(element.get("text", {}).get("text", "")))
        attrs = {
            "data-message": message_key,
            "data-block": block_id,
            "data-action": str(element.get("action_id", "")),
        }
        confirm = element.get("confirm")
        if isinstance(confirm, dict):
            # shown as an "are you sure?" dialog before the click is sent, as Slack does
            attrs["data-confirm-title"] = self.text(confirm.get("title") or {}) or "Are you sure?"
            attrs["data-confirm-text"] = self.text(confirm.get("text") or {})
            attrs["data-confirm-yes"] = self.text(confirm.get("confirm") or {}) or "Yes"
            attrs["data-confirm-no"] = self.text(confirm.get("deny") or {}) or "Cancel"
            attrs["data-confirm-style"] = str(confirm.get("style") or "primary")
            attrs["aria-haspopup"] = "dialog"
        if element.get("url"):
            url = html.escape(str(element["url"]))
            return f'<a class="{css}" href="{url}" target="_blank" rel="noopener">{label}</a>'
        data = " ".join(f'{k}="{html.escape(v)}"' for k, v in attrs.items())
        return f'<button type="button" class="{css}" {data}>{label}</button>'

    def input(self, block: Block) -> str:
        """An input block of a modal: label, a text field (or a note that the element is not
        supported), the hint; ``name`` is ``block_id/action_id``, as in ``state.values``."""
        block_id = str(block.get("block_id", ""))
        element = block.get("element") or {}
        action_id = str(element.get("action_id", ""))
        name = html.escape(f"{block_id}/{action_id}")
        field_id = html.escape(f"in-{block_id}-{action_id}")
        label = self.text(block.get("label"))
        optional = block.get("optional", False)
        required = "" if optional else " required"
        marker = ' <span class="optional">(optional)</span>' if optional else ""
        placeholder = html.escape(str((element.get("placeholder") or {}).get("text", "")))
        initial = html.escape(str(element.get("initial_value", "")))
        limits = ""
        if element.get("min_length"):
            limits += f' minlength="{int(element["min_length"])}"'
        if element.get("max_length"):
            limits += f' maxlength="{int(element["max_length"])}"'
        if element.get("type") == "plain_text_input":
            common = f'id="{field_id}" name="{name}" placeholder="{placeholder}"{required}{limits}'
            if element.get("multiline"):
                control = f'<textarea {common} rows="4">{initial}</textarea>'
            else:
                control = f'<input type="text" {common} value="{initial}">'
        else:
            kind = html.escape(str(element.get("type", "element")))
            control = f'<span class="bk-unsupported">[{kind}]</span>'
        hint = ""
        if block.get("hint"):
            hint = f'<div class="bk-hint">{self.text(block["hint"])}</div>'
        error = (
            f'<div class="bk-error" data-error-for="{html.escape(block_id)}" role="alert"></div>'
        )
        return (
            f'<div class="bk-input"><label for="{field_id}">{label}{marker}</label>'
            f"{control}{hint}{error}</div>"
        )

    def view(self, view: Block) -> dict[str, str]:
        """A modal view: its title, submit and close labels, and its blocks as HTML."""
        return {
            "title": self.text(view.get("title")) or "Dialog",
            "submit": self.text(view.get("submit")) or "Submit",
            "close": self.text(view.get("close")) or "Cancel",
            "html": self.blocks(list(view.get("blocks") or []), ""),
        }


def input_types(view: Block) -> dict[tuple[str, str], str]:
    """``(block_id, action_id) → element type`` of a view's input blocks."""
    found: dict[tuple[str, str], str] = {}
    for block in view.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "input":
            element = block.get("element") or {}
            key = (str(block.get("block_id", "")), str(element.get("action_id", "")))
            found[key] = str(element.get("type", ""))
    return found


def find_button(blocks: list[Block], block_id: str, action_id: str) -> Block | None:
    """The button with ``action_id`` in the block ``block_id`` (actions or section accessory)."""
    for block in blocks:
        if not isinstance(block, dict) or str(block.get("block_id", "")) != block_id:
            continue
        candidates = list(block.get("elements") or [])
        if isinstance(block.get("accessory"), dict):
            candidates.append(block["accessory"])
        for element in candidates:
            if (
                isinstance(element, dict)
                and element.get("type") == "button"
                and element.get("action_id") == action_id
            ):
                return element
    return None
