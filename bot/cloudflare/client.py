"""The Cloudflare adapter: Workers versions and deployments, D1 Time Travel, token checks and
per-version analytics, over one ``httpx.AsyncClient``.

Implements the engine's ``EdgeDeployer`` and ``Analytics`` ports. Every request has a timeout;
429, 5xx, timeouts and dropped connections are retried with exponential backoff and jitter
(``Retry-After`` honoured) until the call's deadline. Creating a deployment is never repeated
blindly: after an answer that leaves it unclear whether Cloudflare acted, the active deployment
is read first (after a timeout, for a while: a late request can still take effect).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from bot.cloudflare import d1_migrations, parse
from bot.cloudflare.budget import BudgetMetrics, CallBudget, Priority
from bot.cloudflare.failures import rejection, unreadable
from bot.cloudflare.reads import ReadCache
from bot.cloudflare.shapes import (
    PER_PAGE,
    check_split,
    describe_split,
    envelope_result,
    more_pages,
    short_message,
)
from bot.cloudflare.transport import (
    Attempt,
    Call,
    CallPlan,
    CloudflareMetrics,
    Retrier,
    RetryBudgets,
)
from bot.cloudflare.worker_answer import reported_version
from bot.config import CloudflareSection
from bot.engine.errors import EdgeUnavailable
from bot.engine.migrations import AppliedMigration, MigrationFile
from bot.engine.model import (
    Deployment,
    ProbeAnswer,
    VersionMetrics,
    VersionReport,
    VersionShare,
    WorkerVersion,
)
from bot.engine.ports import EdgeCall, Urgency
from bot.engine.source import VersionBuild

log = logging.getLogger("releasebot.cloudflare")

SCRIPT = "/accounts/{account_id}/workers/scripts/{script_name}"
VERSIONS = SCRIPT + "/versions"
VERSION = VERSIONS + "/{version_id}"
DEPLOYMENTS = SCRIPT + "/deployments"
D1 = "/accounts/{account_id}/d1/database/{database_id}"
BOOKMARK = D1 + "/time_travel/bookmark"
RESTORE = D1 + "/time_travel/restore"
QUERY = D1 + "/query"
TOKEN_VERIFY = "/user/tokens/verify"
GRAPHQL = "/graphql"
BUILDS = "/accounts/{account_id}/builds/builds"
BUILD_IDS_PER_CALL = 20  # the Builds API takes at most 20 version ids a call

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


class ClientMetrics(CloudflareMetrics, BudgetMetrics, Protocol):
    """Everything the client and its call budget report (``bot.metrics.Metrics``)."""


def client_from_config(
    section: CloudflareSection,
    base_url: str,
    api_token: SecretStr,
    *,
    metrics: ClientMetrics | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> CloudflareClient:
    """The client ``releasebot run`` uses: retry budgets, the call budget and the read caches
    from the ``cloudflare`` section of the config."""
    retry, calls = section.retry, section.calls
    return CloudflareClient(
        base_url,
        api_token,
        section.account_id,
        budgets=RetryBudgets(retry.steps.total_seconds(), retry.reads.total_seconds()),
        max_retry_after=retry.max_retry_after.total_seconds(),
        landing_window=retry.landing_window.total_seconds(),
        call_budget=CallBudget(
            calls.per_second, calls.burst, calls.reserved_for_releases, metrics=metrics
        ),
        versions_ttl=calls.versions_cache.total_seconds(),
        deployments_ttl=calls.deployments_cache.total_seconds(),
        transport=transport,
        metrics=metrics,
    )


class CloudflareClient:
    """One Cloudflare account, reached at ``base_url`` (``.../client/v4``) with a Bearer token.

    Each call is retried until its deadline: ``budgets.steps`` seconds for a release's calls,
    ``budgets.reads`` for reads (``EdgeCall`` with ``Urgency.READ``), which are also shared
    and kept for a moment (``versions_ttl``, ``deployments_ttl``). ``call_budget``, when given,
    rations every attempt of every call in the process. ``sleep``, ``jitter``, ``monotonic``
    and ``wall`` are injectable so tests can run on a fake clock. Use as an async context
    manager, or call ``aclose()``.
    """

    def __init__(
        self,
        base_url: str,
        api_token: SecretStr,
        account_id: str,
        *,
        timeout: float = 10.0,
        budgets: RetryBudgets = RetryBudgets(),
        max_attempts: int | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        max_retry_after: float = 60.0,
        landing_window: float = 30.0,
        landing_check_every: float = 3.0,
        call_budget: CallBudget | None = None,
        versions_ttl: float = 5.0,
        deployments_ttl: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: CloudflareMetrics | None = None,
    ) -> None:
        """``metrics`` (``bot.metrics.Metrics``), when given, hears of every attempt and wait.
        ``max_attempts``, when set, caps the attempts of a call besides its deadline."""
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.account_id = account_id
        self.budgets = budgets
        self.landing_window = landing_window
        self.landing_check_every = landing_check_every
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
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_retry_after=max_retry_after,
            sleep=sleep,
            jitter=jitter,
            monotonic=monotonic,
            wall=wall,
            budget=call_budget,
            max_attempts=max_attempts,
            metrics=metrics,
        )
        self.versions_cache: ReadCache[list[WorkerVersion]] = ReadCache(versions_ttl, monotonic)
        self.deployments_cache: ReadCache[list[Deployment]] = ReadCache(deployments_ttl, monotonic)

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

    def plan(self, call: EdgeCall | None) -> CallPlan:
        """How ``call`` is made: its priority, its retry budget, who hears that it waits."""
        call = call or EdgeCall()
        if call.urgency is Urgency.READ:
            return CallPlan(Priority.READ, self.budgets.reads, call.on_busy)
        priority = Priority.ROLLBACK if call.urgency is Urgency.ROLLBACK else Priority.STEP
        return CallPlan(priority, self.budgets.steps, call.on_busy)

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
        plan: CallPlan,
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
            plan,
            params=params,
            json=json,
        )
        return envelope_result(response, what)

    # -- versions ---------------------------------------------------------------------------

    async def list_versions(self, script: str, call: EdgeCall | None = None) -> list[WorkerVersion]:
        """Uploaded versions, newest first, across all pages."""
        plan = self.plan(call)
        if plan.priority is Priority.READ and not (call and call.fresh):
            found = await self.versions_cache.get(script, lambda: self._versions(script, plan))
            return list(found)
        found = await self._versions(script, plan)
        self.versions_cache.put(script, found)
        return list(found)

    async def _versions(self, script: str, plan: CallPlan) -> list[WorkerVersion]:
        what = f"listing the versions of {script}"
        seen: dict[str, WorkerVersion] = {}
        for page in range(1, MAX_PAGES + 1):
            response = await self._retrier.send(
                "GET",
                self._path(VERSIONS, script_name=script),
                VERSIONS,
                what,
                plan,
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

    async def deployable_versions(
        self, script: str, call: EdgeCall | None = None
    ) -> list[WorkerVersion]:
        """The versions Cloudflare can still deploy, newest first: ``deployable=true`` (the
        newest 100, in one answer)."""
        what = f"listing the deployable versions of {script}"
        result = await self._result(
            "GET",
            VERSIONS,
            what,
            self.plan(call),
            params={"deployable": "true"},
            script_name=script,
        )
        try:
            return parse.versions_page(result)
        except ValueError as exc:
            raise unreadable(what, str(exc)) from exc

    async def get_version(
        self, script: str, version_id: str, call: EdgeCall | None = None
    ) -> WorkerVersion:
        what = f"reading version {version_id[:8]} of {script}"
        result = await self._result(
            "GET", VERSION, what, self.plan(call), script_name=script, version_id=version_id
        )
        try:
            return parse.version(result)
        except ValueError as exc:
            raise unreadable(what, str(exc)) from exc

    # -- deployments ------------------------------------------------------------------------

    async def list_deployments(self, script: str, call: EdgeCall | None = None) -> list[Deployment]:
        """Deployments, newest (the one serving traffic) first."""
        plan = self.plan(call)
        if plan.priority is Priority.READ and not (call and call.fresh):
            found = await self.deployments_cache.get(
                script, lambda: self._deployments(script, plan)
            )
            return list(found)
        found = await self._deployments(script, plan)
        self.deployments_cache.put(script, found)
        return list(found)

    async def _deployments(self, script: str, plan: CallPlan) -> list[Deployment]:
        what = f"listing the deployments of {script}"
        result = await self._result("GET", DEPLOYMENTS, what, plan, script_name=script)
        try:
            return parse.deployments(result)
        except ValueError as exc:
            raise unreadable(what, str(exc)) from exc

    async def active_deployment(
        self, script: str, call: EdgeCall | None = None
    ) -> Deployment | None:
        found = await self.list_deployments(script, call)
        return found[0] if found else None

    async def deploy(
        self,
        script: str,
        split: Sequence[VersionShare],
        message: str,
        force: bool = False,
        call: EdgeCall | None = None,
    ) -> Deployment:
        """Create a percentage deployment of ``split`` on ``script``, retrying until the
        call's deadline.

        A 429 was not processed, so the request is simply repeated after the wait. After a
        5xx Cloudflare may have created the deployment anyway, and after a timeout or a
        dropped connection it may still do so later: the active deployment is read (after a
        timeout, again and again for ``landing_window`` seconds, within the deadline), and
        if it is new since before the first attempt, has exactly this split and carries this
        request's message, it is returned instead of posting again.
        """
        shares = check_split(split)
        what = f"deploying {describe_split(shares)} to {script}"
        urgency = call.urgency if call is not None else Urgency.STEP
        if urgency is Urgency.READ:
            urgency = Urgency.STEP  # a change is never a read
        on_busy = call.on_busy if call is not None else None
        plan = self.plan(EdgeCall(urgency, on_busy))
        self.deployments_cache.forget(script)
        before = await self.active_deployment(script, EdgeCall(urgency, on_busy))
        before_id = before.id if before else None
        note = short_message(message)
        body = {
            "strategy": "percentage",
            "versions": parse.split_body(shares),
            "annotations": {parse.MESSAGE: note},
        }
        path = self._path(DEPLOYMENTS, script_name=script)
        params = {"force": "true"} if force else None
        attempt = self._retrier.begin(what, plan)
        try:
            while True:
                outcome = await self._retrier.attempt(
                    "POST", path, DEPLOYMENTS, attempt, params=params, json=body
                )
                if outcome.final:
                    result = envelope_result(outcome.response, what)
                    try:
                        return parse.deployment(result)
                    except ValueError as exc:
                        raise unreadable(what, str(exc)) from exc
                waited = 0.0
                if outcome.ambiguous:
                    landed, waited = await self._watch_landing(
                        script, shares, note, before_id, attempt, outcome, EdgeCall(urgency)
                    )
                    if landed is not None:
                        log.warning(
                            "deployment request %s but the deployment exists; using it",
                            outcome.problem,
                            extra={
                                "path_template": DEPLOYMENTS,
                                "attempt": attempt.attempts,
                                "deployment_id": landed.id,
                            },
                        )
                        return landed
                await self._retrier.retry_wait(attempt, outcome, waited)
        finally:
            self.deployments_cache.forget(script)
            await self._retrier.over(attempt)

    async def _watch_landing(
        self,
        script: str,
        shares: tuple[VersionShare, ...],
        note: str,
        before_id: str | None,
        attempt: Call,
        outcome: Attempt,
        look: EdgeCall,
    ) -> tuple[Deployment | None, float]:
        """The deployment an unclear attempt created, if it did. After a 5xx one look (after
        the first pause, unless Cloudflare asked to wait for longer than the bot will); after
        a timeout or a dropped connection, looks every ``landing_check_every`` seconds for
        ``landing_window`` seconds (never past the call's deadline), since the request may
        still be under way. Also how long it waited."""
        retrier = self._retrier
        started = retrier.monotonic()
        window = self.landing_window if outcome.late else 0.0
        until = min(retrier.monotonic() + window, attempt.deadline)
        first = retrier.backoff(attempt.attempts)
        if outcome.retry_after is not None and not retrier.waits_too_long(outcome):
            first = max(first, outcome.retry_after)
        if retrier.waits_too_long(outcome) or first > retrier.remaining(attempt):
            first = 0.0
        if first:
            await retrier.tell(attempt)
            await retrier.sleep(first)
        while True:
            try:
                current = await self.active_deployment(script, look)
            except EdgeUnavailable as exc:
                raise EdgeUnavailable(
                    f"{retrier.give_up(attempt)}; checking whether it took effect failed too "
                    f"({exc}), so the current split of {script} is unknown"
                ) from exc
            if current is not None and current.id != before_id and _ours(current, shares, note):
                return current, retrier.monotonic() - started
            left = until - retrier.monotonic()
            if left <= 0:
                return None, retrier.monotonic() - started
            await retrier.tell(attempt)
            await retrier.sleep(min(self.landing_check_every, left))

    # -- Workers Builds ---------------------------------------------------------------------

    async def version_builds(
        self, version_ids: Sequence[str], call: EdgeCall | None = None
    ) -> dict[str, VersionBuild]:
        """The Workers Build of each version that one made (others are absent), asking for at
        most 20 version ids a call."""
        wanted = list(dict.fromkeys(version_ids))
        plan = self.plan(call or EdgeCall(Urgency.READ))
        found: dict[str, VersionBuild] = {}
        for start in range(0, len(wanted), BUILD_IDS_PER_CALL):
            chunk = wanted[start : start + BUILD_IDS_PER_CALL]
            what = f"reading the Workers Builds of {len(chunk)} versions"
            result = await self._result(
                "GET", BUILDS, what, plan, params={"version_ids": ",".join(chunk)}
            )
            try:
                found.update(parse.builds(result))
            except ValueError as exc:
                raise unreadable(what, str(exc)) from exc
        return found

    # -- D1 Time Travel ---------------------------------------------------------------------

    async def d1_bookmark(self, database_id: str) -> str:
        what = f"reading the Time Travel bookmark of D1 database {database_id}"
        result = await self._result("GET", BOOKMARK, what, self.plan(None), database_id=database_id)
        bookmark = result.get("bookmark") if isinstance(result, dict) else None
        if not isinstance(bookmark, str) or not bookmark:
            raise unreadable(what, "result.bookmark is missing")
        return bookmark

    # -- D1 queries and migrations -----------------------------------------------------------

    async def d1_query(
        self, database_id: str, sql: str, call: EdgeCall | None = None
    ) -> list[list[dict[str, Any]]]:
        """Run ``sql`` as one batch; the rows of each statement. ``EdgeRejected`` (code 7500
        and SQLite's message) when a statement failed: then nothing of the batch was kept."""
        what = f"querying D1 database {database_id}"
        result = await self._result(
            "POST", QUERY, what, self.plan(call), json={"sql": sql}, database_id=database_id
        )
        if not isinstance(result, list):
            raise unreadable(what, "result is not a list")
        rows: list[list[dict[str, Any]]] = []
        for entry in result:
            found = entry.get("results") if isinstance(entry, dict) else None
            if not isinstance(found, list):
                raise unreadable(what, "a statement's results are missing")
            rows.append([r for r in found if isinstance(r, dict)])
        return rows

    async def applied_migrations(
        self, database_id: str, call: EdgeCall | None = None
    ) -> list[AppliedMigration]:
        (exists,) = await self.d1_query(database_id, d1_migrations.TABLE_EXISTS, call)
        if not exists:
            return []
        (rows,) = await self.d1_query(database_id, d1_migrations.LIST_APPLIED, call)
        return d1_migrations.applied_rows(rows)

    async def table_definitions(self, database_id: str, call: EdgeCall | None = None) -> list[str]:
        (rows,) = await self.d1_query(database_id, d1_migrations.TABLE_DEFINITIONS, call)
        return [r["sql"] for r in rows if isinstance(r.get("sql"), str)]

    async def apply_migration(self, database_id: str, migration: MigrationFile) -> None:
        await self.d1_query(database_id, d1_migrations.CREATE_TABLE)
        await self.d1_query(database_id, d1_migrations.apply_batch(migration))

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
            self.plan(None),
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
        result = await self._result("GET", TOKEN_VERIFY, what, self.plan(EdgeCall(Urgency.READ)))
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, str):
            raise unreadable(what, "result.status is missing")
        return status

    # -- analytics --------------------------------------------------------------------------

    async def version_metrics(
        self, script: str, since: datetime, until: datetime, call: EdgeCall | None = None
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
        response = await self._retrier.send(
            "POST", GRAPHQL, GRAPHQL, what, self.plan(call), json=payload
        )
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


def _ours(current: Deployment, shares: tuple[VersionShare, ...], note: str) -> bool:
    """Whether ``current`` is the deployment this request asked for: the same split, and this
    request's message (when Cloudflare shows annotations; someone else's split of the same
    numbers carries a message of their own or none)."""
    if not current.same_split(shares):
        return False
    return current.message is None or current.message == note


__all__ = ["METRICS_QUERY", "CloudflareClient", "check_split", "client_from_config"]
