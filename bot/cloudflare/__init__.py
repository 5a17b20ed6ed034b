"""Cloudflare: the API adapter (``CloudflareClient``) and a local simulator of the API."""

from bot.cloudflare.client import CloudflareClient

__all__ = ["CloudflareClient"]
