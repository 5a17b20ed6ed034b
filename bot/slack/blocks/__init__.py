"""Pure Block Kit builders: data in, ``(text, blocks)`` out; no Slack client here."""
