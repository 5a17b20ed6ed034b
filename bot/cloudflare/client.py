"""The Cloudflare adapter: Workers versions and deployments, D1 Time Travel, token checks and
per-version analytics, over one ``httpx.AsyncClient``.

Implements the engine's ``EdgeDeployer`` and ``Analytics`` ports. Every call has a timeout;
429, 5xx, timeouts and dropped connections are retried with exponential backoff and jitter
(``Retry-After`` honoured). Creating a deployment is never repeated blindly: after an answer
that leaves it unclear whether Cloudflare acted, the active deployment is read first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from bot.cloudflare import parse
from bot.cloudflare.failures import gave_up, rejection, unreadable
from bot.cloudflare.shapes import (
    PER_PAGE,
    check_split,
    describe_split,
    envelope_result,
    more_pages,
    short_message,
)
from bot.cloudflare.transport import CloudflareMetrics, Retrier
from bot.cloudflare.worker_answer import reported_version
from bot.engine.errors import EdgeUnavailable
from bot.engine.model import (
    Deployment,
    ProbeAnswer,
    VersionMetrics,
    VersionReport,
    VersionShare,
    WorkerVersion,
)

log = logging.getLogger("releasebot.cloudflare")

SCRIPT = "/accounts/{account_id}/workers/scripts/{script_name}"
VERSIONS = SCRIPT + "/versions"
VERSION = VERSIONS + "/{version_id}"
DEPLOYMENTS = SCRIPT + "/deployments"
D1 = "/accounts/{account_id}/d1/database/{database_id}"
BOOKMARK = D1 + "/time_travel/bookmark"
RESTORE = D1 + "/time_travel/restore"
TOKEN_VERIFY = "/user/tokens/verify"
GRAPHQL = "/graphql"

MAX_PAGES = 40  # a runaway paginator stops after 2000 versions; only 100 are deployable
VERSION_OVERRIDE_HEADER = "Cloudflare-Workers-Version-Overrides"

METRICS_QUERY = """
query ($a: String!, $s: String!, $from: Time!, $to: Time!) {
  viewer {
    accounts(filter: {accountTag: $a}) {
      workersInvocationsAdaptive(
        limit: 100
        filter: {scriptName: $s, datetime_geq: $from, datetime_leq: $to}
      ) {
        sum { requests errors }
        quantiles { cpuTimeP50 cpuTimeP99 }
        dimensions { scriptVersion }
      }
    }
  }
}
""".strip()


class CloudflareClient:
    """One Cloudflare account, reached at ``base_url`` (``.../client/v4``) with a Bearer token.

    ``sleep`` and ``jitter`` are injectable so tests can observe backoff without waiting.
    Use as an async context manager, or call ``aclose()``.
    """

    def __init__(
        self,
        base_url: str,
        api_token: SecretStr,
        account_id: str,
        *,
        timeout: float = 10.0,
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        max_retry_after: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        metrics: CloudflareMetrics | None = None,
    ) -> None:
        """``metrics`` (``bot.metrics.Metrics``), when given, hears of every attempt and wait."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.account_id = account_id
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {api_token.get_secret_value()}",
                "User-Agent": "releasebot",
            },
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        # health probes go to the Worker's own URL: a separate client, so the API token can
        # never travel with them
        self._probe_http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), transport=transport, follow_redirects=False
        )
        self._retrier = Retrier(
            self._http,
            log=log,
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_retry_after=max_retry_after,
            sleep=sleep,
            jitter=jitter,
            metrics=metrics,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._probe_http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    def _path(self, template: str, **values: str) -> str:
        # values come from people (script names, version ids): quoted so none can add a
        # path segment or a query of its own
        quoted = {k: quote(v, safe="") for k, v in values.items()}
        return template.format(account_id=quote(self.account_id, safe=""), **quoted)

    async def _result(
        self,
        method: str,
        template: str,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        **path_values: str,
    ) -> Any:
        """Send with retries and return ``result`` of a success envelope."""
        response = await self._retrier.send(
            method,
            self._path(template, **path_values),
            template,
            what,
            params=params,
            json=json,
        )
        return envelope_result(response, what)

    # -- versions ---------------------------------------------------------------------------

    async def list_versions(self, script: str) -> list[WorkerVersion]:
        """Uploaded versions, newest first, across all pages."""
        what = f"listing the versions of {script}"
        seen: dict[str, WorkerVersion] = {}
        for page in range(1, MAX_PAGES + 1):
            response = await self._retrier.send(
                "GET",
                self._path(VERSIONS, script_name=script),
                VERSIONS,
                what,
                params={"page": page, "per_page": PER_PAGE},
            )
            result = envelope_result(response, what)
            try:
                items = parse.versions_page(result)
            except ValueError as exc:
                raise unreadable(what, str(exc)) from exc
            for item in items:
                seen.setdefault(item.id, item)
            if not more_pages(response.json(), page, len(items)):
                break
        return list(seen.values())

    async def get_version(self, script: str, version_id: str) -> WorkerVersion:
        what = f"reading version {version_id[:8]} of {script}"
        result = await self._result("GET", VERSION, what, script_name=script, version_id=version_id)
        try:
            return parse.version(result)
        except ValueError as exc:
            raise unreadable(what, str(exc)) from exc

    # -- deployments ------------------------------------------------------------------------

    async def list_deployments(self, script: str) -> list[Deployment]:
        """Deployments, newest (the one serving traffic) first."""
        what = f"listing the deployments of {script}"
        result = await self._result("GET", DEPLOYMENTS, what, script_name=script)
        try:
            return parse.deployments(result)
        except ValueError as exc:
            raise unreadable(what, str(exc)) from exc

    async def active_deployment(self, script: str) -> Deployment | None:
        found = await self.list_deployments(script)
        return found[0] if found else None

    async def deploy(
        self, script: str, split: Sequence[VersionShare], message: str, force: bool = False
    ) -> Deployment:
        """Create a percentage deployment of ``split`` on ``script``.

        A 429 was not processed, so the request is simply repeated after the wait. After a
        5xx, a timeout or a dropped connection Cloudflare may have created the deployment
        anyway: the active deployment is read, and if it is new since before the first
        attempt and has exactly this split, it is returned instead of posting again.
        """
        shares = check_split(split)
        what = f"deploying {describe_split(shares)} to {script}"
        before = await self.active_deployment(script)
        before_id = before.id if before else None
        body = {
            "strategy": "percentage",
            "versions": parse.split_body(shares),
            "annotations": {parse.MESSAGE: short_message(message)},
        }
        path = self._path(DEPLOYMENTS, script_name=script)
        params = {"force": "true"} if force else None
        problems: list[str] = []

        for attempt in range(1, self._retrier.max_attempts + 1):
            outcome = await self._retrier.attempt(
                "POST", path, DEPLOYMENTS, attempt, params=params, json=body
            )
            if outcome.final:
                result = envelope_result(outcome.response, what)
                try:
                    return parse.deployment(result)
                except ValueError as exc:
                    raise unreadable(what, str(exc)) from exc
            problems.append(outcome.problem)
            wait_too_long = self._retrier.waits_too_long(outcome)
            if outcome.ambiguous:
                # settle first (unless told to wait for minutes), then look before posting again
                if not wait_too_long:
                    await self._retrier.pause(attempt, outcome.retry_after)
                landed = await self._landed(script, shares, before_id, what, problems)
                if landed is not None:
                    log.warning(
                        "deployment request answered %s but the deployment exists; using it",
                        outcome.problem,
                        extra={"path_template": DEPLOYMENTS, "attempt": attempt},
                    )
                    return landed
            self._retrier.refuse_long_wait(outcome, what)
            if attempt == self._retrier.max_attempts:
                break
            if not outcome.ambiguous:
                await self._retrier.pause(attempt, outcome.retry_after)
        raise gave_up(problems, what)

    async def _landed(
        self,
        script: str,
        shares: tuple[VersionShare, ...],
        before_id: str | None,
        what: str,
        problems: list[str],
    ) -> Deployment | None:
        """The deployment an unclear attempt created, if it did."""
        try:
            current = await self.active_deployment(script)
        except EdgeUnavailable as exc:
            raise EdgeUnavailable(
                f"{gave_up(problems, what)}; checking whether it took effect failed too "
                f"({exc}), so the current split of {script} is unknown"
            ) from exc
        if current is not None and current.id != before_id and current.same_split(shares):
            return current
        return None

    # -- D1 Time Travel ---------------------------------------------------------------------

    async def d1_bookmark(self, database_id: str) -> str:
        what = f"reading the Time Travel bookmark of D1 database {database_id}"
        result = await self._result("GET", BOOKMARK, what, database_id=database_id)
        bookmark = result.get("bookmark") if isinstance(result, dict) else None
        if not isinstance(bookmark, str) or not bookmark:
            raise unreadable(what, "result.bookmark is missing")
        return bookmark

    async def d1_restore(self, database_id: str, bookmark: str) -> str:
        """Restore D1 to ``bookmark``; returns the bookmark from before (to undo).

        The bookmark is read first: if the restore had to be repeated, Cloudflare's
        ``previous_bookmark`` would name the state after the first restore, not before it.
        """
        what = f"restoring D1 database {database_id} to bookmark {bookmark}"
        before = await self.d1_bookmark(database_id)
        response, attempts = await self._retrier.send_counted(
            "POST",
            self._path(RESTORE, database_id=database_id),
            RESTORE,
            what,
            params={"bookmark": bookmark},
        )
        result = envelope_result(response, what)
        previous = result.get("previous_bookmark") if isinstance(result, dict) else None
        if attempts > 1 or not isinstance(previous, str) or not previous:
            return before
        return previous

    # -- token ------------------------------------------------------------------------------

    async def verify_token(self) -> str:
        """The token's status as Cloudflare sees it: ``active``, ``disabled`` or ``expired``."""
        what = "verifying the API token"
        result = await self._result("GET", TOKEN_VERIFY, what)
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, str):
            raise unreadable(what, "result.status is missing")
        return status

    # -- analytics --------------------------------------------------------------------------

    async def version_metrics(
        self, script: str, since: datetime, until: datetime
    ) -> dict[str, VersionMetrics]:
        """Requests, errors and CPU quantiles per version id of ``script`` in [since, until].

        Versions without traffic in the window are absent.
        """
        what = f"reading analytics of {script}"
        payload = {
            "query": METRICS_QUERY,
            "variables": {
                "a": self.account_id,
                "s": script,
                "from": parse.format_time(since),
                "to": parse.format_time(until),
            },
        }
        response = await self._retrier.send("POST", GRAPHQL, GRAPHQL, what, json=payload)
        if response.status_code >= 400:
            raise rejection(response, what)
        try:
            body = response.json()
        except ValueError as exc:
            raise unreadable(what, "the body is not JSON") from exc
        # GraphQL reports failures with HTTP 200 and a top-level errors list
        if isinstance(body, dict) and body.get("errors"):
            raise rejection(response, what)
        try:
            return parse.metrics(body.get("data") if isinstance(body, dict) else None)
        except ValueError as exc:
            raise unreadable(what, str(exc)) from exc

    # -- health -----------------------------------------------------------------------------

    async def health_probe(
        self,
        url: str,
        version_override: tuple[str, str] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - a per-request httpx timeout, not a scope
    ) -> tuple[bool, int | None, str]:
        """GET ``url`` once; ``(ok, status, detail)``. ``version_override=(script, version_id)``
        asks Cloudflare to route the request to that version, which it does only when the
        version is in the active deployment (a 0% share counts). Never raises for network
        trouble.
        """
        ok, status, detail, _ = await self._probe(url, version_override, timeout)
        return ok, status, detail

    async def version_probe(
        self,
        url: str,
        script: str,
        version_id: str,
        report: VersionReport,
        timeout: float = 5.0,  # noqa: ASYNC109 - a per-request httpx timeout, not a scope
    ) -> ProbeAnswer:
        """One probe of ``url`` pinned to ``version_id`` of ``script``, and the version that
        answered as the Worker tells it (``report``): a response header, or a dotted field of
        its JSON body. None when the Worker does not say (Cloudflare itself does not)."""
        ok, status, detail, response = await self._probe(url, (script, version_id), timeout)
        answered = reported_version(response, report) if response is not None else None
        return ProbeAnswer(ok, status, detail, answered)

    async def _probe(
        self,
        url: str,
        version_override: tuple[str, str] | None,
        timeout: float,  # noqa: ASYNC109 - a per-request httpx timeout, not a scope
    ) -> tuple[bool, int | None, str, httpx.Response | None]:
        headers = {}
        if version_override is not None:
            script, version_id = version_override
            headers[VERSION_OVERRIDE_HEADER] = f'{script}="{version_id}"'
        started = time.monotonic()
        target = httpx.URL(url)
        where = f"{target.host}{target.path}"
        try:
            response = await self._probe_http.get(url, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            detail = f"no answer from {where} within {timeout:g} s"
            log.warning("health probe failed: %s", detail)
            return False, None, detail, None
        except httpx.HTTPError as exc:
            detail = f"could not reach {where} ({type(exc).__name__})"
            log.warning("health probe failed: %s", detail)
            return False, None, detail, None
        elapsed_ms = round((time.monotonic() - started) * 1000)
        ok = 200 <= response.status_code < 300
        detail = f"{where} answered {response.status_code} in {elapsed_ms} ms"
        log.info("health probe: %s", detail, extra={"status": response.status_code})
        return ok, response.status_code, detail, response


__all__ = ["METRICS_QUERY", "CloudflareClient", "check_split"]
