"""The Slack Web API client: ``SLACK_API_URL``, timeouts, and retries on 429 and 5xx."""

from __future__ import annotations

import time
from typing import Any, Protocol

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


class SlackMetrics(Protocol):
    """What hears of every Web API call (``bot.metrics.Metrics``)."""

    def observe_slack(self, method: str, status: str, seconds: float) -> None: ...


class MeasuredWebClient(AsyncWebClient):
    """An ``AsyncWebClient`` that counts and times every Web API call: every method
    (``chat_postMessage``, ...) goes through ``api_call``."""

    def __init__(self, *, metrics: SlackMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

    async def api_call(self, api_method: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        status = "unreachable"
        try:
            response = await super().api_call(api_method, **kwargs)
            status = "ok"
            return response
        except Exception as exc:
            data = getattr(getattr(exc, "response", None), "data", None)
            if isinstance(data, dict) and data.get("error"):
                status = str(data["error"])
            raise
        finally:
            self._metrics.observe_slack(api_method, status, time.perf_counter() - started)


def make_client(
    token: str, base_url: str, timeout: int = 15, metrics: SlackMetrics | None = None
) -> AsyncWebClient:
    """slack-sdk retries only connection errors by default; rate limits (honouring
    Retry-After) and server errors are retried here too. The attempt count is shared by the
    handlers: a call is made at most four times (three for server errors alone). With
    ``metrics``, every call is counted and timed."""
    if not base_url.endswith("/"):
        base_url += "/"
    options = _client_options(token, base_url, timeout)
    if metrics is not None:
        return MeasuredWebClient(metrics=metrics, **options)
    return AsyncWebClient(**options)


def _client_options(token: str, base_url: str, timeout: int) -> dict[str, Any]:
    return dict(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )
