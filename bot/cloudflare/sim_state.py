"""The simulator's account: scripts, versions, deployments, D1 databases, traffic and faults.

In memory. One ``threading.RLock`` guards every change, because tests change the state from
their own thread while the simulator serves requests from a server thread. Ids come from a
seeded generator, so a fresh state with the same seed hands out the same ids.
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.cloudflare.sim_model import (
    DEFAULT_ACCOUNT_ID,
    DEPLOYABLE_VERSIONS,
    SCRIPT_NAME,
    Fault,
    SimBuild,
    SimDatabase,
    SimDeployment,
    SimError,
    SimScript,
    SimVersion,
    check_split,
)

REQUEST_LOG_LIMIT = 2000
# D1 Time Travel: at most 10 restores per 10 minutes per database (Cloudflare's D1 limits)
D1_RESTORE_LIMIT = 10
D1_RESTORE_WINDOW = timedelta(minutes=10)
EXAMPLE_SCRIPTS = ("tax-api", "tax-api-staging", "tax-web", "tax-web-staging")
EXAMPLE_DATABASE_ID = "5f3c9a52-0d7e-4b8e-9a61-7c1d2e3f4a5b"
EXAMPLE_STAGING_DATABASE_ID = "9a1e4c27-3b6d-4f80-b2c5-6d7e8f9a0b1c"
EXAMPLE_RELEASES = (
    ("v1.4.0", "Quarterly filing export", "ana@example.com"),
    ("v1.4.1", "Fix rounding in VAT totals", "ben@example.com"),
    ("v1.4.2", "Faster receipt search", "ana@example.com"),
)

SplitLike = str | Sequence[Any]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_pairs(split: SplitLike) -> list[tuple[str, float]]:
    """A version id (100%), or (version_id, pct) pairs, ``VersionShare``s or API-style dicts."""
    if isinstance(split, str):
        return [(split, 100.0)]
    pairs: list[tuple[str, float]] = []
    for item in split:
        if isinstance(item, dict):
            pairs.append((str(item["version_id"]), float(item["percentage"])))
        elif isinstance(item, tuple | list):
            pairs.append((str(item[0]), float(item[1])))
        else:
            share: Any = item  # a VersionShare (or anything shaped like one)
            pairs.append((str(share.version_id), float(share.percentage)))
    return pairs


@dataclass
class SimulatorState:
    """Everything the simulator knows. Public methods are for tests and the dev console; the
    HTTP API reaches the same data through ``bot.cloudflare.sim_api``.

    ``deployment_posts``: every deployment POST that reached the API (``{"script", "force",
    "body"}``), refused ones included; requests answered by an injected fault before the
    operation are not in it. ``requests_log``: the last 2000 API requests (method, path,
    query, status, whether a fault answered); never headers. ``contract_violations``: one
    line per contract problem, when the app checks the contract.
    """

    account_id: str = DEFAULT_ACCOUNT_ID
    clock: Callable[[], datetime] = _utcnow
    seed: int = 0
    token_owner_email: str = "releasebot@example.com"
    token_status: str = "active"
    scripts: dict[str, SimScript] = field(default_factory=dict)
    databases: dict[str, SimDatabase] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    deployment_posts: list[dict[str, Any]] = field(default_factory=list)
    requests_log: list[dict[str, Any]] = field(default_factory=list)
    contract_violations: list[str] = field(default_factory=list)
    # Workers Builds by the version id each made
    builds: dict[str, SimBuild] = field(default_factory=dict)
    # KV namespaces, R2 buckets and queues deleted from the account (by binding id)
    deleted_resources: set[str] = field(default_factory=set)
    # How long a new deployment takes to reach the Workers: until then a version override
    # of a version new to it is not applied (Cloudflare: "up to a couple of seconds").
    override_lag: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._rng = random.Random(self.seed)

    # -- ids and lookups ---------------------------------------------------------------------

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def new_hex(self, bits: int = 128) -> str:
        return f"{self._rng.getrandbits(bits):0{bits // 4}x}"

    def script(self, name: str) -> SimScript:
        with self.lock:
            found = self.scripts.get(name)
            if found is None:
                raise SimError(f"no script named {name!r}")
            return found

    def version(self, script: str, version_id: str) -> SimVersion:
        found = self.script(script).find(version_id)
        if found is None:
            raise SimError(f"{script} has no version {version_id!r}")
        return found

    def version_id(self, script: str, tag: str) -> str:
        """The id of the newest version of ``script`` tagged ``tag``."""
        for v in reversed(self.script(script).versions):
            if v.tag == tag:
                return v.id
        raise SimError(f"{script} has no version tagged {tag!r}")

    def active_split(self, script: str) -> list[tuple[str, float]]:
        active = self.script(script).active
        return list(active.versions) if active else []

    # -- changes for tests and the console ----------------------------------------------------

    def add_script(self, name: str) -> str:
        if not SCRIPT_NAME.match(name):
            raise SimError(f"{name!r} is not a valid script name (lowercase, digits, - and _)")
        with self.lock:
            self.scripts.setdefault(name, SimScript(name=name))
        return name

    def upload_version(
        self,
        script: str,
        tag: str | None = None,
        message: str | None = None,
        author_email: str = "dev@example.com",
        source: str = "wrangler",
        *,
        created_on: datetime | None = None,
        content: str | None = None,
        migration_tag: str | None = None,
        bindings: Sequence[dict[str, str]] = (),
        secrets: Sequence[str] = (),
        compatibility_date: str | None = None,
        compatibility_flags: Sequence[str] | None = None,
        usage_model: str | None = None,
    ) -> str:
        """A new version of ``script`` (not deployed); returns its id. ``content`` is the
        uploaded script (default: one build per tag, the same in every script);
        ``migration_tag`` its Durable Object migration tag; ``bindings`` its bindings to
        account resources (``{"type": "kv_namespace", "name": "CACHE", "id": "..."}``)."""
        if tag is not None and len(tag) > 20:
            raise SimError("workers/tag is at most 20 characters")
        if message is not None and len(message) > 50:
            raise SimError("workers/message is at most 50 characters")
        with self.lock:
            target = self.script(script)
            number = target.versions[-1].number + 1 if target.versions else 1
            created = created_on or self.clock()
            vid = self.new_uuid()
            target.versions.append(
                SimVersion(
                    id=vid,
                    number=number,
                    created_on=created,
                    author_email=author_email,
                    author_id=self.new_hex(),
                    source=source,
                    tag=tag,
                    message=message,
                    content=content if content is not None else f"// build {tag or vid}",
                    migration_tag=migration_tag,
                    bindings=[dict(b) for b in bindings],
                    secrets=list(secrets),
                    compatibility_date=compatibility_date or "2024-09-23",
                    compatibility_flags=(
                        list(compatibility_flags)
                        if compatibility_flags is not None
                        else ["nodejs_compat"]
                    ),
                    usage_model=usage_model or "standard",
                    cpu_p50_us=800.0 + 40.0 * (number % 7),
                    cpu_p99_us=3200.0 + 160.0 * (number % 7),
                )
            )
            return vid

    def record_build(
        self,
        version_id: str,
        repository: str,
        commit_hash: str,
        *,
        branch: str = "main",
        outcome: str | None = "success",
        author: str = "ana@example.com",
        commit_message: str = "",
        pull_request_url: str | None = None,
    ) -> None:
        """Say that a Workers Build of ``repository`` (``owner/name``) at ``commit_hash``
        made ``version_id``."""
        owner, _, name = repository.partition("/")
        with self.lock:
            self.builds[version_id] = SimBuild(
                version_id=version_id,
                uuid=self.new_uuid(),
                created_on=self.clock(),
                commit_hash=commit_hash,
                branch=branch,
                repo_name=name,
                provider_account_name=owner,
                author=author,
                commit_message=commit_message,
                outcome=outcome,
                pull_request_url=pull_request_url,
            )

    def deploy_direct(
        self,
        script: str,
        split: SplitLike,
        author_email: str = "someone@example.com",
        source: str = "wrangler",
        message: str | None = None,
        *,
        created_on: datetime | None = None,
    ) -> str:
        """A deployment made outside the bot (wrangler, the dashboard); returns its id.

        ``split`` is a version id (100%) or pairs/``VersionShare``s/dicts."""
        with self.lock:
            pairs = _as_pairs(split)
            problem = check_split(pairs)
            if problem:
                raise SimError(problem)
            target = self.script(script)
            for vid, _ in pairs:
                if target.find(vid) is None:
                    raise SimError(f"{script} has no version {vid!r}")
            return self.record_deployment(
                target, pairs, author_email, source, message, created_on=created_on
            ).id

    def record_deployment(
        self,
        target: SimScript,
        pairs: Iterable[tuple[str, float]],
        author_email: str,
        source: str,
        message: str | None,
        *,
        created_on: datetime | None = None,
    ) -> SimDeployment:
        with self.lock:
            created = created_on or self.clock()
            previous = target.active
            if previous is not None and created <= previous.created_on:
                # keeps the history strictly ordered even under a frozen test clock
                created = previous.created_on + timedelta(microseconds=1)
            deployment = SimDeployment(
                id=self.new_uuid(),
                created_on=created,
                source=source,
                author_email=author_email,
                message=message,
                versions=[(vid, float(pct)) for vid, pct in pairs],
            )
            target.deployments.insert(0, deployment)
            return deployment

    def set_error_rate(self, script: str, version_id: str, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise SimError("an error rate is between 0 and 1")
        with self.lock:
            self.version(script, version_id).error_rate = float(rate)

    def set_healthy(self, script: str, version_id: str, healthy: bool) -> None:
        with self.lock:
            self.version(script, version_id).healthy = bool(healthy)

    def set_reports_version(self, script: str, version_id: str, reports: bool) -> None:
        """Whether the version's Worker says in its health answer which version it is."""
        with self.lock:
            self.version(script, version_id).reports_version = bool(reports)

    def delete_resource(self, resource_id: str) -> None:
        """A KV namespace, R2 bucket or queue is deleted: versions binding it cannot be
        deployed any more (Cloudflare refuses such a rollback)."""
        with self.lock:
            self.deleted_resources.add(resource_id)

    def set_traffic(self, script: str, requests_per_second: float) -> None:
        """Traffic of ``script``; analytics apply it to the whole history (one rate per script)."""
        if requests_per_second < 0:
            raise SimError("traffic cannot be negative")
        with self.lock:
            self.script(script).traffic_rps = float(requests_per_second)

    def mark_secret_changed(
        self, script: str, names: Sequence[str] = ("API_KEY",), redeploy: bool = True
    ) -> str | None:
        """A secret of ``script`` changed: every version uploaded so far then needs
        ``?force=true`` to be deployed (code 10220).

        Like ``wrangler secret put``, the change makes a new version from the one at 100%
        and deploys it (``redeploy``); returns that version's id, or None.
        """
        with self.lock:
            target = self.script(script)
            target.secrets_changed_at = target.versions[-1].number if target.versions else 0
            target.changed_secrets = list(names)
            stable = target.active.stable_version_id if target.active else None
            if not redeploy or stable is None:
                return None
            base = self.version(script, stable)
            vid = self.upload_version(
                script, tag=None, message="Secret change", author_email=base.author_email
            )
            self.record_deployment(target, [(vid, 100.0)], self.token_owner_email, "api", None)
            return vid

    def inject(
        self,
        method: str,
        path_regex: str,
        status: int | None,
        count: int = 1,
        retry_after: float | None = None,
        delay: float = 0.0,
        apply_first: bool = False,
        code: int | None = None,
        message: str | None = None,
    ) -> Fault:
        """The next ``count`` requests matching ``method`` (or ``*``) and ``path_regex``
        (searched in the full path, e.g. ``/client/v4/accounts/.../deployments$``) get
        ``status`` with a failure envelope and ``Retry-After`` (None: the real answer).

        ``delay`` seconds pass before the request is handled, or, with ``apply_first``, after
        the real operation has been performed and before ``status`` is answered: the request
        succeeded but its response was lost or late. Faults apply to the API and to
        ``/__workers``; ``code``/``message`` replace the envelope's error."""
        if count < 1:
            raise SimError("count must be at least 1")
        fault = Fault(
            method=method.upper(),
            pattern=re.compile(path_regex),
            status=status,
            remaining=count,
            retry_after=retry_after,
            delay=delay,
            apply_first=apply_first,
            code=code,
            message=message,
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first pending fault for this request, counted as used."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def add_database(
        self,
        name: str = "tax-db",
        database_id: str | None = None,
        *,
        created_at: datetime | None = None,
    ) -> str:
        with self.lock:
            dbid = database_id or self.new_uuid()
            now = created_at or self.clock()
            first = self._bookmark(1)
            self.databases[dbid] = SimDatabase(
                id=dbid, name=name, created_at=now, seq=1, history=[(now, first)]
            )
            return dbid

    def d1_write(self, database_id: str) -> str:
        """Records a write to the database (a new current bookmark); returns the bookmark."""
        with self.lock:
            db = self.database(database_id)
            return db.advance(self.clock(), self._bookmark(db.seq + 1))

    def d1_query(
        self, database_id: str, sql: str, params: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Run ``sql`` on the database as D1's query API does (one batch, one transaction);
        a batch that changed the database makes a new bookmark. ``QueryFailed`` when a
        statement failed (nothing of the batch is kept)."""
        with self.lock:
            db = self.database(database_id)
            results, changed = db.sql.query(sql, params)
            if changed:
                db.advance(self.clock(), self._bookmark(db.seq + 1))
            return results

    def d1_restore(self, database_id: str, bookmark: str) -> str:
        """Put the database back as it was at ``bookmark``; returns the new current bookmark."""
        with self.lock:
            db = self.database(database_id)
            db.load(bookmark)
            now = self.clock()
            db.restored_at = [t for t in db.restored_at if now - t < D1_RESTORE_WINDOW] + [now]
            return db.advance(now, self._bookmark(db.seq + 1))

    def d1_restore_wait(self, database_id: str) -> timedelta | None:
        """How long until the database may be restored again under D1's limit (at most
        ``D1_RESTORE_LIMIT`` restores per ``D1_RESTORE_WINDOW``); None: it may be now."""
        with self.lock:
            db = self.database(database_id)
            now = self.clock()
            recent = sorted(t for t in db.restored_at if now - t < D1_RESTORE_WINDOW)
            if len(recent) < D1_RESTORE_LIMIT:
                return None
            return recent[-D1_RESTORE_LIMIT] + D1_RESTORE_WINDOW - now

    def database(self, database_id: str) -> SimDatabase:
        with self.lock:
            found = self.databases.get(database_id)
            if found is None:
                raise SimError(f"no D1 database {database_id!r}")
            return found

    def _bookmark(self, seq: int) -> str:
        # the shape of D1 bookmarks: three hex counters and a hash
        return f"{seq:08x}-{seq * 3:08x}-{seq * 7:08x}-{self.new_hex()}"

    def log_request(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.requests_log.append(entry)
            del self.requests_log[:-REQUEST_LOG_LIMIT]

    def reset(self) -> None:
        """Empty account (same account id and token settings), fresh id generator."""
        with self.lock:
            self.scripts.clear()
            self.databases.clear()
            self.faults.clear()
            self.deployment_posts.clear()
            self.requests_log.clear()
            self.contract_violations.clear()
            self.deleted_resources.clear()
            self.builds.clear()
            self._rng = random.Random(self.seed)

    def seed_example_script(self, name: str, start: datetime) -> None:
        """One script like the example services: v1.4.0-v1.4.2 uploaded a day apart from
        ``start``, and v1.4.1 at 100%."""
        with self.lock:
            self.add_script(name)
            for i, (tag, message, author) in enumerate(EXAMPLE_RELEASES):
                self.upload_version(
                    name,
                    tag=tag,
                    message=message,
                    author_email=author,
                    created_on=start + timedelta(days=i),
                )
            self.deploy_direct(
                name,
                self.version_id(name, "v1.4.1"),
                author_email="ben@example.com",
                message="Release v1.4.1",
                created_on=start + timedelta(days=1, hours=2),
            )

    def seed_example(self, account_id: str = DEFAULT_ACCOUNT_ID) -> None:
        """tax-api, tax-api-staging, tax-web, tax-web-staging with v1.4.0-v1.4.2 uploaded a day
        apart and v1.4.1 at 100%, and the D1 databases of production (``EXAMPLE_DATABASE_ID``)
        and staging (``EXAMPLE_STAGING_DATABASE_ID``)."""
        with self.lock:
            self.account_id = account_id
            start = self.clock() - timedelta(days=3)
            for name in EXAMPLE_SCRIPTS:
                self.seed_example_script(name, start)
            self.add_database("tax-db", EXAMPLE_DATABASE_ID, created_at=start)
            self.add_database("tax-db-staging", EXAMPLE_STAGING_DATABASE_ID, created_at=start)

    def deployable(self, script: SimScript) -> list[SimVersion]:
        """Versions that may be deployed: the newest ``DEPLOYABLE_VERSIONS``, newest first."""
        return list(reversed(script.versions))[:DEPLOYABLE_VERSIONS]
