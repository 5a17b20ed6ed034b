"""The rule for the URLs the bot sends its secrets to (Slack's Web API, Cloudflare's API,
webhooks): ``https://``, except to the machine itself (127.0.0.0/8, ::1, localhost), where
the simulators and stand-ins of ``releasebot dev`` and the tests listen."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def https_or_loopback(url: str) -> str:
    """``url`` when it is https:// (or http:// to a loopback address); else ValueError."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if parts is not None and host:
        if parts.scheme == "https":
            return url
        if parts.scheme == "http" and is_loopback(host):
            return url
    raise ValueError(
        f"'{url}' is not an https:// URL (http:// is only for a loopback address such as 127.0.0.1)"
    )
