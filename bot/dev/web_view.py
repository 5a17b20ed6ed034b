"""HTML of the browser console: the page shell, one viewer's channel (messages, threads,
ephemeral answers, an open modal) and the Cloudflare side panel."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.dev.slack_standin import Message
from bot.dev.web_blocks import BlockRenderer
from bot.dev.web_mrkdwn import Users, channel_name, format_date, user_name

esc = html.escape


@dataclass(frozen=True)
class Person:
    """Someone the page can act as."""

    id: str
    name: str
    role: str
    tz: str


def ts_key(ts: str) -> tuple[int, int]:
    """Message timestamps (``"1700000000.000012"``) in the order Slack shows them."""
    whole, _, frac = ts.partition(".")
    return int(whole or 0), int(frac or 0)


def dom_id(channel: str, ts: str) -> str:
    return f"m-{channel}-{ts.replace('.', '-')}"


class ChannelView:
    """Renders one viewer's view of one channel."""

    def __init__(self, users: Users, viewer: Person, now: datetime | None = None) -> None:
        self.users = users
        self.viewer = viewer
        self.blocks = BlockRenderer(users, viewer.tz, now)
        self.now = now

    @staticmethod
    def _threads(messages: Iterable[Message]) -> tuple[list[Message], dict[str, list[Message]]]:
        """The top-level messages in order, and each one's replies (by the parent's ts)."""
        ordered = sorted(messages, key=lambda m: ts_key(m.ts))
        present = {m.ts for m in ordered if m.ephemeral_for is None}
        replies: dict[str, list[Message]] = {}
        top: list[Message] = []
        for m in ordered:
            parent = m.thread_ts
            if parent and parent != m.ts and parent in present:
                replies.setdefault(parent, []).append(m)
            else:
                top.append(m)
        return top, replies

    def messages(self, messages: Iterable[Message]) -> list[dict[str, str]]:
        """``[{id, key, html}]`` of the top-level messages in order; a thread shows as its
        "N replies" link (:meth:`threads` has the replies)."""
        top, replies = self._threads(messages)
        return [
            {
                "id": dom_id(m.channel, m.ts),
                "key": f"{m.channel}:{m.ts}",
                "html": self.message(m, replies.get(m.ts, [])),
            }
            for m in top
        ]

    def threads(self, messages: Iterable[Message]) -> dict[str, str]:
        """``{parent key: html}``: each thread as the side pane shows it, the parent message
        first, then a rule with the count, then the replies."""
        top, replies = self._threads(messages)
        out = {}
        for m in top:
            thread = replies.get(m.ts)
            if not thread:
                continue
            count = len(thread)
            rule = (
                f'<div class="thread-rule"><span>{count} repl{"y" if count == 1 else "ies"}'
                "</span></div>"
            )
            body = "".join(self.message(r, []) for r in thread)
            out[f"{m.channel}:{m.ts}"] = self.message(m, [], in_pane=True) + rule + body
        return out

    def message(self, m: Message, thread: list[Message], in_pane: bool = False) -> str:
        key = f"{m.channel}:{m.ts}"
        if m.blocks:
            body = self.blocks.blocks(m.blocks, key)
        else:
            body = f'<div class="bk-text">{self.blocks.mrkdwn(m.text)}</div>'
        author = (
            "releasebot" if m.user.startswith("U0RELEASEBOT") else user_name(self.users, m.user)
        )
        when = format_date(ts_key(m.ts)[0], "{time}", self.viewer.tz, self.now) or ""
        classes = (
            "msg"
            + (" ephemeral" if m.ephemeral_for else "")
            + (" reply" if m.thread_ts and m.thread_ts != m.ts else "")
            + (" parent" if in_pane else "")
        )
        edited = ' <span class="edited">(edited)</span>' if m.edits else ""
        note = ""
        if m.ephemeral_for:
            note = (
                '<div class="eph-note"><span aria-hidden="true">👁</span> Only visible to you'
                f'<button type="button" class="dismiss" data-dismiss="{esc(key)}" '
                'aria-label="Dismiss message">Dismiss</button></div>'
            )
        replies = ""
        if thread:
            count = len(thread)
            label = f"{count} repl{'y' if count == 1 else 'ies'}"
            last = format_date(ts_key(thread[-1].ts)[0], "{time}", self.viewer.tz, self.now)
            replies = (
                f'<div class="thread-summary"><button type="button" class="thread-link" '
                f'data-thread="{esc(key)}" aria-haspopup="dialog">{label}</button>'
                f'<span class="muted">Last reply {esc(last or "")}</span></div>'
            )
        return (
            f'<article class="{classes}" data-key="{esc(key)}" aria-label="{esc(author)} at '
            f'{esc(when)}"><div class="avatar" aria-hidden="true">RB</div><div class="msg-main">'
            f'<div class="msg-meta"><span class="author">{esc(author)}</span>'
            f'<span class="app-badge">APP</span><span class="msg-time">{esc(when)}</span>{edited}'
            f'</div>{note}<div class="msg-body">{body}</div>{replies}</div></article>'
        )

    def modal(self, view: Mapping[str, Any]) -> dict[str, str]:
        rendered = self.blocks.view(dict(view))
        return {"id": str(view.get("id", "")), **rendered}


def channels_nav(channels: list[tuple[str, str, str]], current: str) -> str:
    """The sidebar's channel buttons; ``channels`` holds ``(id, label, kind)``."""
    items = []
    for cid, label, kind in channels:
        sigil = "#" if kind == "channel" else "@"
        current_attr = ' aria-current="page"' if cid == current else ""
        items.append(
            f'<li><button type="button" class="chan" data-channel="{esc(cid)}"{current_attr}>'
            f'<span aria-hidden="true">{sigil}</span> {esc(label)}</button></li>'
        )
    return "".join(items)


def channel_label(channel: str, users: Users) -> tuple[str, str]:
    """``(label, kind)`` of a channel id: a user id is the viewer's DM with the bot."""
    if channel in users:
        return "releasebot", "dm"
    return channel_name(channel), "channel"


def _pct(value: float) -> str:
    return f"{value:g}%"


MODE_BUTTONS = {
    "good": ("Make good", "serve cleanly again"),
    "errors": ("Errors", "fail 25% of requests, health check passes"),
    "bad": ("Make bad", "fail 25% of requests and the health check"),
}


def _controls(script: str, version_id: str, name: str, bad: bool) -> str:
    """The buttons that change how a version behaves in the simulator."""
    buttons = []
    for mode in ("good",) if bad else ("errors", "bad"):
        label, what = MODE_BUTTONS[mode]
        danger = " danger" if mode == "bad" else ""
        buttons.append(
            f'<button type="button" class="sim-btn{danger}" data-script="{esc(script)}" '
            f'data-version="{esc(version_id)}" data-mode="{mode}" '
            f'aria-label="{esc(f"{label}: {script} {name}")}" title="{esc(what)}">{label}</button>'
        )
    return "".join(buttons)


def cloudflare_panel(overview: Mapping[str, Any]) -> str:
    """Every Worker with its live split (a bar) and its versions: share, error rate, health,
    and a button to make the version bad (or good again)."""
    sections = []
    for w in overview.get("workers", []):
        script = str(w["script"])
        head_id = f"w-{esc(script)}"
        target = f"{w['service']} · {w['environment']}" if w.get("service") else "not configured"
        segments = []
        for i, s in enumerate(w["split"]):
            name = s["tag"] or s["short"]
            segments.append(
                f'<div class="seg seg{i % 3}" style="width:{float(s["percentage"]):.2f}%" '
                f'title="{esc(name)} {_pct(s["percentage"])}">{esc(name)} {_pct(s["percentage"])}'
                f"</div>"
            )
        split_text = " + ".join(
            f"{s['tag'] or s['short']} {_pct(s['percentage'])}" for s in w["split"]
        )
        bar = (
            f'<div class="split" role="img" aria-label="Live split: {esc(split_text)}">'
            f"{''.join(segments)}</div>"
            if segments
            else '<div class="split empty">nothing deployed</div>'
        )
        rows = []
        for v in w["versions"]:
            bad = not v["healthy"] or v["error_rate"] > 0.01
            name = v["tag"] or v["short"]
            rate = f"{v['error_rate'] * 100:.1f}%"
            health = "" if v["healthy"] else ' <span class="unhealthy">unhealthy</span>'
            live = _pct(v["percentage"]) if v["percentage"] else "—"
            rows.append(
                f'<tr class="{"bad" if bad else ""}" data-version="{esc(v["id"])}">'
                f"<td><code>{esc(v['short'])}</code> {esc(v['tag'] or '')}</td>"
                f'<td class="num live">{live}</td><td class="num errors">{rate}{health}</td>'
                f'<td class="controls">{_controls(script, v["id"], name, bad)}</td></tr>'
            )
        sections.append(
            f'<section class="worker" aria-labelledby="{head_id}" data-script="{esc(script)}">'
            f'<h3 id="{head_id}">{esc(script)} <span class="target">{esc(target)}</span></h3>'
            f"{bar}"
            f'<table class="versions"><thead><tr><th scope="col">Version</th>'
            f'<th scope="col">Live</th><th scope="col">Errors</th><th scope="col">'
            f'<span class="sr-only">Control</span></th></tr></thead><tbody>{"".join(rows)}'
            f"</tbody></table></section>"
        )
    return "".join(sections) or '<p class="muted">No Workers in the simulator.</p>'


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>releasebot console · #{channel_name}</title>
<link rel="stylesheet" href="{base}/static/console.css">
</head>
<body data-base="{base}" data-user="{user}" data-channel="{channel}" data-command="{command}"
  data-since="{since}">
<div class="app">
  <nav class="sidebar" aria-label="Workspace">
    <div class="workspace">Battle Born <span class="muted">· releasebot dev</span></div>
    <label class="side-label" for="user">Act as</label>
    <select id="user" aria-describedby="role">{user_options}</select>
    <div id="role" class="role">{role}</div>
    <h2 class="side-label">Channels</h2>
    <ul id="channels" class="channels">{channels}</ul>
    <h2 class="side-label">Apps</h2>
    <ul class="channels"><li><button type="button" class="chan" id="app-home">
      <span aria-hidden="true">⌂</span> releasebot Home</button></li></ul>
    <p class="side-help">Type <kbd>{command} help</kbd> in the composer. Buttons act as the
    person chosen above.</p>
  </nav>
  <main class="chat" aria-labelledby="channel-title">
    <header class="channel-head">
      <h1 id="channel-title">#{channel_name}</h1>
      <span id="live" class="live" role="status">connecting…</span>
    </header>
    <section id="home" class="home" aria-label="releasebot Home" hidden></section>
    <div id="messages" class="messages" role="log" aria-live="polite"
      aria-label="Messages">{messages}</div>
    <button type="button" id="jump" class="jump" hidden>New messages <span
      aria-hidden="true">↓</span></button>
    <form id="composer" class="composer" autocomplete="off">
      <input id="composer-input" name="text" type="text" spellcheck="false"
        aria-label="Send a slash command, e.g. {command} deploy tax-api v1.4.2 to staging"
        placeholder="{command} deploy tax-api v1.4.2 to staging">
      <button type="submit" class="send">Send</button>
    </form>
  </main>
  <aside class="cloudflare" aria-labelledby="cf-title">
    <h2 id="cf-title">Cloudflare Workers <span class="muted">(simulated)</span></h2>
    <p class="side-help">Live traffic split and error rate of each version. <b>Errors</b>: the
    version fails 25% of its requests (a rollout gate catches it under traffic). <b>Make
    bad</b>: its health check fails too (caught before any traffic).</p>
    <form id="upload" class="upload" aria-labelledby="upload-title" autocomplete="off">
      <h3 id="upload-title">Upload a version</h3>
      <label>Worker <select name="script" id="upload-script">{scripts}</select></label>
      <label>Tag <input name="tag" id="upload-tag" maxlength="20" placeholder="v1.5.0"></label>
      <label>Message <input name="message" id="upload-message" maxlength="50"
        placeholder="Faster refunds"></label>
      <fieldset><legend>It behaves</legend>
        <label><input type="radio" name="mode" value="good" checked> good</label>
        <label><input type="radio" name="mode" value="errors"> errors</label>
        <label><input type="radio" name="mode" value="bad"> bad</label>
      </fieldset>
      <button type="submit" class="sim-btn">Upload</button>
    </form>
    <div id="workers" aria-live="polite">loading…</div>
  </aside>
  <aside id="thread" class="thread-pane" aria-labelledby="thread-title" hidden>
    <header class="pane-head">
      <h2 id="thread-title">Thread <span id="thread-where" class="muted"></span></h2>
      <button type="button" id="thread-close" class="pane-close" aria-label="Close thread"
        title="Close (Esc)">×</button>
    </header>
    <div id="thread-body" class="thread-body" aria-live="polite"></div>
  </aside>
</div>
<dialog id="modal" aria-labelledby="modal-title">
  <form id="modal-form" method="dialog" novalidate>
    <h2 id="modal-title"></h2>
    <div id="modal-body"></div>
    <div id="modal-error" class="bk-error" role="alert"></div>
    <div class="modal-actions">
      <button type="button" id="modal-close" class="bk-btn"></button>
      <button type="submit" id="modal-submit" class="bk-btn bk-primary"></button>
    </div>
  </form>
</dialog>
<dialog id="confirm" aria-labelledby="confirm-title" aria-describedby="confirm-text">
  <form method="dialog">
    <h2 id="confirm-title"></h2>
    <div id="confirm-text"></div>
    <div class="modal-actions">
      <button type="submit" value="no" id="confirm-no" class="bk-btn"></button>
      <button type="submit" value="yes" id="confirm-yes" class="bk-btn"></button>
    </div>
  </form>
</dialog>
<div id="toast" class="toast" role="status" aria-live="polite"></div>
<script src="{base}/static/console.js"></script>
</body>
</html>
"""


def page(
    base: str,
    people: list[Person],
    viewer: Person,
    channel: str,
    channels: list[tuple[str, str, str]],
    command: str,
    messages_html: str,
    since: str = "",
    scripts: Iterable[str] = (),
) -> str:
    """The whole page, with the first view of the channel already in it."""
    options = "".join(
        f'<option value="{esc(p.id)}" data-role="{esc(p.role)}"'
        f"{' selected' if p.id == viewer.id else ''}>{esc(p.name)} · {esc(p.role)}</option>"
        for p in people
    )
    label, _ = next(((lbl, k) for cid, lbl, k in channels if cid == channel), (channel, ""))
    return PAGE.format(
        base=esc(base),
        user=esc(viewer.id),
        channel=esc(channel),
        since=esc(since),
        scripts="".join(f'<option value="{esc(n)}">{esc(n)}</option>' for n in scripts),
        channel_name=esc(label),
        command=esc(command),
        user_options=options,
        role=esc(f"{viewer.name} is {viewer.role}"),
        channels=channels_nav(channels, channel),
        messages=messages_html or '<p class="empty muted">No messages yet.</p>',
    )
