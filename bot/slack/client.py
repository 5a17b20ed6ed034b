"""The Slack Web API client: ``SLACK_API_URL``, timeouts, and retries on 429 and 5xx."""

from __future__ import annotations

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

# Slack's own failures and those of the gateways in front of it; slack-sdk's built-in server
# error handler knows only 500 and 503.
RETRIED_STATUSES = frozenset({500, 502, 503, 504})


class AsyncServerErrorRetryHandler(AsyncRetryHandler):
    """Retries 500, 502, 503 and 504 with slack-sdk's backoff (0.5 s, 1 s, ... with jitter)."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code in RETRIED_STATUSES


def make_client(token: str, base_url: str, timeout: int = 15) -> AsyncWebClient:
    """slack-sdk retries only connection errors by default; rate limits (honouring
    Retry-After) and server errors are retried here too. The attempt count is shared by the
    handlers: a call is made at most four times (three for server errors alone)."""
    if not base_url.endswith("/"):
        base_url += "/"
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )
