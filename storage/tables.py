"""The database schema as SQLModel tables (``SQLModel.metadata`` is Alembic's target).

Repositories talk to these tables with SQLAlchemy Core statements (``releases``, ``steps``,
... below are the ``Table`` objects) and map rows to the engine's dataclasses themselves, so the
engine never sees a table class.

Rules the database enforces, not just the code:

* ``releases.active_slot`` is ``"service/env"`` while a release is deploying or
  verifying and NULL otherwise; its unique constraint allows one active release per target.
* ``approvals`` is unique on (release_id, user_id): a vote counts once however often it arrives.
* ``audit_events.seq`` is assigned by the writer holding the audit lock (see storage.audit),
  gap-free, so a missing number always means a deleted record.

Timestamps are timezone-aware UTC in and out; SQLite, which has no time zones, stores UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# Deterministic constraint names: migrations can refer to them, and errors can be told apart.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Refuses naive datetimes (their zone is a guess); SQLite gets naive UTC, and whatever comes
    back is UTC-aware.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: storage needs timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class ReleaseRow(SQLModel, table=True):
    __tablename__ = "releases"
    __table_args__ = (
        sa.UniqueConstraint("active_slot"),
        sa.Index(None, "service", "environment"),
        # The queue (approved releases of a target, oldest first) without scanning history.
        sa.Index("ix_releases_target_state", "service", "environment", "state", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    service: str
    environment: str
    script: str
    version_id: str
    requested_by: str
    policy: str
    kind: str
    strategy: str
    plan: list[int] = Field(sa_type=sa.JSON)
    state: str = Field(index=True)
    version_tag: str | None = None
    version_message: str | None = None
    stable_version_id: str | None = None
    stable_version_tag: str | None = None
    reason: str | None = None
    emergency: bool = False
    approvals_required: int = 0
    current_step: int = -1
    paused: bool = False
    channel: str | None = None
    message_ts: str | None = None
    d1_bookmark: str | None = None
    migrations: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    outcome: str | None = None
    ended_by: str | None = None
    source: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    checks: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    last_good: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    diff: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    created_at: datetime | None = _when()
    updated_at: datetime | None = _when()
    finished_at: datetime | None = _when()
    expires_at: datetime | None = _when()
    revision: int = 0
    # "service/env" while the release is active, else NULL (NULLs never collide in a unique).
    active_slot: str | None = None


class StepRow(SQLModel, table=True):
    __tablename__ = "release_steps"
    __table_args__ = (sa.UniqueConstraint("release_id", "index"),)

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="releases.id", index=True)
    index: int
    percent: int
    status: str
    deployment_id: str | None = None
    intended_at: datetime | None = _when()
    deployed_at: datetime | None = _when()
    gate: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class ApprovalRow(SQLModel, table=True):
    __tablename__ = "approvals"
    __table_args__ = (sa.UniqueConstraint("release_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="releases.id")
    version_id: str
    user_id: str
    approve: bool
    at: datetime = _when(nullable=False)
    reason: str | None = None


class LockRow(SQLModel, table=True):
    """A manual lock (``/release lock``): nothing deploys to service/env until unlocked."""

    __tablename__ = "locks"
    __table_args__ = (sa.UniqueConstraint("service", "environment"),)

    id: int | None = Field(default=None, primary_key=True)
    service: str
    environment: str
    reason: str | None = None
    locked_by: str
    at: datetime = _when(nullable=False)


class FreezeRow(SQLModel, table=True):
    """A change freeze on an environment until a time (``/release freeze``)."""

    __tablename__ = "freezes"

    id: int | None = Field(default=None, primary_key=True)
    environment: str = Field(index=True)
    until: datetime = _when(nullable=False)
    reason: str | None = None
    by: str
    at: datetime = _when(nullable=False)


class TimerRow(SQLModel, table=True):
    """Work due at a time (bake ends, approval expiries), claimed with a lease by one replica."""

    __tablename__ = "timers"

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    release_id: int | None = Field(default=None, foreign_key="releases.id", index=True)
    due_at: datetime = _when(nullable=False, index=True)
    payload: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    claimed_by: str | None = None
    claimed_until: datetime | None = _when()
    fired_at: datetime | None = _when()


class AuditEventRow(SQLModel, table=True):
    """One audit record. Every column but ``hash`` is covered by ``hash`` (see storage.audit)."""

    __tablename__ = "audit_events"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = _when(nullable=False)
    actor: str
    action: str
    release_id: int | None = Field(default=None, index=True)
    release_key: str | None = None
    service: str | None = None
    environment: str | None = None
    before: str | None = None
    after: str | None = None
    # Canonical JSON text, hashed byte for byte as stored.
    detail: str = Field(sa_type=sa.Text)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, index=True)
    # The id of the HMAC key ``hash`` was made with (storage.audit_keys); NULL for the plain
    # SHA-256 records written before the chain was keyed.
    key_id: str | None = Field(default=None, max_length=16)


def _table(model: type[SQLModel]) -> sa.Table:
    return cast(sa.Table, model.__table__)  # type: ignore[attr-defined]


releases = _table(ReleaseRow)
steps = _table(StepRow)
approvals = _table(ApprovalRow)
locks = _table(LockRow)
freezes = _table(FreezeRow)
timers = _table(TimerRow)
audit_events = _table(AuditEventRow)


class WebhookOutboxRow(SQLModel, table=True):
    """One release event waiting for (or done with) delivery to one outgoing webhook.

    Written by the engine's event sink next to the release change; delivered by the scheduler
    (``bot.webhooks.sender``). ``next_attempt_at`` is NULL once the row is done: delivered
    (``delivered_at``) or given up (``failed_at``). ``claimed_by``/``claimed_until`` lease a row
    to one replica while it is being sent.
    """

    __tablename__ = "webhook_outbox"

    id: int | None = Field(default=None, primary_key=True)
    webhook: str = Field(index=True)
    event: str
    release_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
    created_at: datetime = _when(nullable=False)
    attempts: int = 0
    next_attempt_at: datetime | None = _when(index=True)
    claimed_by: str | None = None
    claimed_until: datetime | None = _when()
    delivered_at: datetime | None = _when()
    failed_at: datetime | None = _when()
    last_status: int | None = None
    last_error: str | None = None


webhook_outbox = _table(WebhookOutboxRow)


class SlackOutboxRow(SQLModel, table=True):
    """A Slack message that must not be lost (audit records for the audit channel).

    Written before the first attempt to send it; ``sent_at`` is set once Slack took it, and
    ``next_attempt_at`` becomes NULL (so the index holds only what is still owed). Until then
    ``next_attempt_at`` says when it may be tried (again): an attempt in progress pushes it one
    lease ahead, so only one replica sends a row at a time, and a failure pushes it by the
    backoff. ``payload`` is what to render, at send time (``bot.slack.audit_poster``).
    """

    __tablename__ = "slack_outbox"

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    channel: str
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
    created_at: datetime = _when(nullable=False)
    attempts: int = 0
    next_attempt_at: datetime | None = _when(index=True)
    sent_at: datetime | None = _when()
    last_error: str | None = None


slack_outbox = _table(SlackOutboxRow)


class SlackTriggerRow(SQLModel, table=True):
    """A ``trigger_id`` of a slash command or interaction the bot has taken on (Slack mints
    one per invocation), so a replay of the same request within its window is recognised by
    every replica. Rows older than the window are deleted (``storage.triggers``)."""

    __tablename__ = "slack_triggers"

    trigger_id: str = Field(primary_key=True)
    kind: str
    user_id: str | None = None
    seen_at: datetime = _when(nullable=False, index=True)
    # Whether the person was told once that a replay was not run again.
    noted: bool = False


slack_triggers = _table(SlackTriggerRow)
