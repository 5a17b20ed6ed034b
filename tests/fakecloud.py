"""A small Cloudflare Workers API on virtual time, for the client's retry and budget rules.

``VirtualTime`` is a clock that only moves when every task is waiting on it: ``sleep`` parks
the caller, and ``run`` jumps to the earliest wake-up once nothing else can run. The client
(``monotonic``, ``wall``, ``sleep``) and the engine (``Clock``) share one, so a test of two
minutes of retries takes milliseconds. ``FakeCloudflare`` answers the versions and
deployments endpoints through ``httpx.MockTransport``, and lets a test decide each answer
(``rule``): a status with ``Retry-After``, a timeout after which the deployment still lands
some seconds later, an answer lost after the deployment was made.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from bot.cloudflare.budget import CallBudget
from bot.cloudflare.client import CloudflareClient
from bot.cloudflare.transport import RetryBudgets

ACCOUNT = "0123456789abcdef0123456789abcdef"
BASE = "https://api.cloudflare.com/client/v4"
START = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
T = TypeVar("T")


class VirtualTime:
    def __init__(self, start: datetime = START) -> None:
        self.start = start
        self.t = 0.0
        self._wakeups: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t)

    def advance(self, seconds: float) -> None:
        """The engine's ``FakeClock`` interface: jump (nobody is woken)."""
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._wakeups, (self.t + seconds, next(self._seq), future))
        await future

    async def _settle(self) -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def run(self, work: Coroutine[Any, Any, T], horizon: float = 3600.0) -> T:
        """Run ``work`` to its end, moving time whenever everything waits on it."""
        task = asyncio.ensure_future(work)
        while True:
            await self._settle()
            if task.done():
                return task.result()
            if not self._wakeups:
                raise AssertionError("nothing is waiting on virtual time and work is not done")
            when, _, future = heapq.heappop(self._wakeups)
            if when > horizon:
                task.cancel()
                raise AssertionError(f"still not done after {horizon:g} virtual seconds")
            self.t = max(self.t, when)
            if not future.done():
                future.set_result(None)


@dataclass
class Answer:
    """What one request gets instead of the real answer. ``status`` None: the real answer.
    ``timeout``: no answer within the client's timeout (``seconds`` of virtual time pass);
    ``lands_after``: a deployment POST takes effect that many seconds later even so.
    ``apply_first``: the deployment is made, then ``status`` is answered."""

    status: int | None = None
    retry_after: float | None = None
    timeout: bool = False
    seconds: float = 10.0
    lands_after: float | None = None
    apply_first: bool = False


@dataclass
class Seen:
    at: float
    method: str
    kind: str  # "versions", "deployments"
    script: str
    split: tuple[tuple[str, float], ...] | None
    answer: str  # status, "timeout"


@dataclass
class FakeDeployment:
    id: str
    versions: tuple[tuple[str, float], ...]
    message: str | None
    at: float
    by_bot: bool = True

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "strategy": "percentage",
            "source": "api",
            "versions": [{"version_id": v, "percentage": p} for v, p in self.versions],
        }
        if self.message is not None:
            body["annotations"] = {"workers/message": self.message}
        return body


Rule = Callable[["FakeCloudflare", str, str, str, tuple[tuple[str, float], ...] | None], Answer]


@dataclass
class FakeCloudflare:
    time: VirtualTime
    versions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # id, tag
    deployments: dict[str, list[FakeDeployment]] = field(default_factory=dict)  # newest first
    seen: list[Seen] = field(default_factory=list)
    rule: Rule | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_script(self, script: str, tags: tuple[str, ...] = ("v1.4.1", "v1.4.2")) -> None:
        ids = [(f"{script}-{tag}", tag) for tag in tags]
        self.versions[script] = list(reversed(ids))
        self.deployments[script] = [FakeDeployment("d0", ((ids[0][0], 100.0),), None, 0.0, False)]

    def made(self, script: str) -> list[tuple[tuple[str, float], ...]]:
        """Splits of the deployments made by requests, oldest first."""
        return [d.versions for d in reversed(self.deployments[script]) if d.by_bot]

    def calls(self, since: float = 0.0, until: float = float("inf")) -> list[Seen]:
        return [s for s in self.seen if since <= s.at < until]

    def _deploy(self, script: str, split: tuple[tuple[str, float], ...], message: str | None):  # type: ignore[no-untyped-def]
        made = FakeDeployment(f"dep-{next(self._ids)}", split, message, self.time.t)
        self.deployments[script].insert(0, made)
        return made

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        script = path.split("/workers/scripts/")[1].split("/")[0]
        kind = path.rsplit("/", 1)[-1]
        split = message = None
        if request.method == "POST":
            body = json.loads(request.content)
            split = tuple((v["version_id"], float(v["percentage"])) for v in body["versions"])
            message = body.get("annotations", {}).get("workers/message")
        answer = self.rule(self, request.method, kind, script, split) if self.rule else Answer()
        label = "timeout" if answer.timeout else str(answer.status or 200)
        self.seen.append(Seen(self.time.t, request.method, kind, script, split, label))
        if answer.timeout:
            if split is not None and answer.lands_after is not None:
                asyncio.get_running_loop().create_task(
                    self._land_later(script, split, message, answer.lands_after)
                )
            await self.time.sleep(answer.seconds)
            raise httpx.ReadTimeout("no answer", request=request)
        if answer.status is not None:
            if answer.apply_first and split is not None:
                self._deploy(script, split, message)
            headers = {}
            if answer.retry_after is not None:
                headers["retry-after"] = str(int(answer.retry_after))
            code = 971 if answer.status == 429 else 10002
            return httpx.Response(
                answer.status,
                headers=headers,
                json={"success": False, "errors": [{"code": code, "message": "busy"}]},
            )
        if request.method == "POST":
            assert split is not None
            return _ok(self._deploy(script, split, message).to_api())
        if kind == "deployments":
            return _ok({"deployments": [d.to_api() for d in self.deployments[script]]})
        items = [
            {"id": vid, "number": n, "annotations": {"workers/tag": tag}}
            for n, (vid, tag) in enumerate(self.versions[script], 1)
        ]
        return _ok({"items": items}, result_info={"page": 1, "per_page": 50, "total_count": 2})

    async def _land_later(
        self, script: str, split: tuple[tuple[str, float], ...], message: str | None, after: float
    ) -> None:
        await self.time.sleep(after)
        self._deploy(script, split, message)

    def client(self, **options: Any) -> CloudflareClient:
        options.setdefault("budgets", RetryBudgets())
        options.setdefault("jitter", lambda: 0.5)
        return CloudflareClient(
            BASE,
            SecretStr("fake-token"),
            ACCOUNT,
            transport=httpx.MockTransport(self.handle),
            sleep=self.time.sleep,
            monotonic=self.time.monotonic,
            wall=self.time.now,
            **options,
        )

    def budget(self, rate: float = 2.0, burst: int = 20, reserve: int = 5) -> CallBudget:
        return CallBudget(
            rate, burst, reserve, monotonic=self.time.monotonic, sleep=self.time.sleep
        )


def _ok(result: Any, **extra: Any) -> httpx.Response:
    return httpx.Response(
        200, json={"success": True, "errors": [], "messages": [], "result": result, **extra}
    )
