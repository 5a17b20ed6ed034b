"""releasebot: a Slack ChatOps release bot for Cloudflare Workers."""

__version__ = "0.1.0"
