"""Wiring: one Runtime holds the database, the adapters, the engine and the Slack app."""

from __future__ import annotations

import logging
from typing import Any

from bot.cloudflare.client import CloudflareClient, client_from_config
from bot.config import Config, GitHubSource
from bot.d1.lint import SqliteLinter
from bot.d1.sources import ConfiguredSource
from bot.engine.clock import SystemClock
from bot.engine.drift_watch import DriftWatch
from bot.engine.ports import Clock
from bot.engine.service import ReleaseService
from bot.github.client import GitHubClient
from bot.metrics import Metrics
from bot.scheduler import Scheduler
from bot.settings import Settings, secret_from_env
from bot.slack.app import create_app
from bot.slack.audit_checkpoints import POLL_EVERY as CHECKPOINT_POLL
from bot.slack.audit_checkpoints import AuditCheckpointer
from bot.slack.audit_poster import RETRY_EVERY as AUDIT_RETRY_EVERY
from bot.slack.audit_poster import AuditPoster
from bot.slack.client import make_client
from bot.slack.directory import SlackDirectory
from bot.slack.notifier import SlackNotifier
from bot.slack.replays import WINDOW as REPLAY_WINDOW
from bot.slack.replies import Replier
from bot.slack.throttle import PersonLimit
from bot.tasks import BackgroundTasks
from bot.webhooks import SqlWebhookOutbox, WebhookSender, load_credentials
from storage.audit_queries import SqlDriftLedger
from storage.db import create_engine
from storage.outbox import OutboxWriter, SqlOutbox
from storage.rails import SqlRailsRepository
from storage.repositories import SqlReleaseRepository, SqlTimerRepository, SqlVoteRepository
from storage.triggers import SqlTriggerLedger

log = logging.getLogger("releasebot")

# Seconds between deletions of Slack trigger_ids past the replay window.
TRIGGER_EXPIRY_EVERY = 60.0


class Runtime:
    def __init__(self, settings: Settings, config: Config, clock: Clock | None = None) -> None:
        self.settings = settings
        self.config = config
        self.clock = clock or SystemClock()
        self.db = create_engine(settings.database_url)
        # Every change's audit-channel post and webhook events are written in its transaction.
        webhook_rows = (
            SqlWebhookOutbox(self.db, config.webhooks, self.clock).rows_for
            if config.webhooks
            else None
        )
        self.outbox = OutboxWriter(config.slack.audit_channel, webhook_rows, self.clock.now)
        # The chain's HMAC key (`releasebot run` refuses to start without one; settings built
        # by hand in tests may leave it out, and get a plain SHA-256 chain).
        self.audit_key = settings.audit_key()
        self.repo = SqlReleaseRepository(self.db, self.outbox, self.audit_key)
        self.votes = SqlVoteRepository(self.db, self.outbox, self.audit_key)
        self.metrics = Metrics()
        self.timers = SqlTimerRepository(self.db, on_claimed=self.metrics.observe_timers)
        self.rails = SqlRailsRepository(self.db, self.outbox, self.audit_key)
        self.triggers = SqlTriggerLedger(self.db)
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
        self.slack_client = make_client(token, settings.slack_api_url, metrics=self.metrics)
        assert settings.cloudflare_api_token is not None
        self.edge: CloudflareClient = client_from_config(
            config.cloudflare,
            settings.cloudflare_api_base_url,
            settings.cloudflare_api_token,
            metrics=self.metrics,
        )
        # One GitHub client per token a policy's checks name, made when first needed.
        self.github: dict[str, GitHubClient] = {}
        self.tasks = BackgroundTasks()
        limit = config.slack.read_limit
        self.read_limit = PersonLimit(limit.commands, limit.per.total_seconds())
        self.replier = Replier(self.slack_client)
        self.audit_poster = AuditPoster(
            self.slack_client,
            config.slack.audit_channel,
            SqlOutbox(self.db),
            self.repo,
            self.clock,
            tasks=self.tasks,
        )
        self.notifier = SlackNotifier(
            self.slack_client,
            config,
            self.repo,
            self.votes,
            tasks=self.tasks,
            audit_poster=self.audit_poster,
            metrics=self.metrics,
        )
        self.service = ReleaseService(
            config,
            self.repo,
            self.edge,
            self.notifier,
            self.clock,
            votes=self.votes,
            timers=self.timers,
            rails=self.rails,
            directory=SlackDirectory(self.slack_client),
            analytics=self.edge,
            prober=self.edge,
            hosts=self.github_for,
            builds=self.edge,
            migration_source=ConfiguredSource(config, self.github_for),
            d1=self.edge,
            linter=SqliteLinter(),
        )
        # Problems with webhook secrets stop `releasebot run` before this point.
        credentials, _ = load_credentials(config.webhooks)
        self.webhooks = (
            WebhookSender(
                self.db,
                config.webhooks,
                credentials,
                owner=self.service.owner,
                on_delivered=self.metrics.observe_deliveries,
            )
            if config.webhooks
            else None
        )
        self.scheduler = Scheduler(self.service, self.tasks, webhooks=self.webhooks)
        self.drift = DriftWatch(
            config,
            self.repo,
            self.edge,
            self.service.recorder,
            SqlDriftLedger(self.db, self.outbox, self.audit_key),
        )
        self.checkpoints = (
            AuditCheckpointer(
                self.audit_poster.outbox,
                self.audit_poster.retry_due,
                config.slack.audit_channel,
                self.db,
                self.audit_key,
                config.slack.audit_checkpoints,
                self.clock,
            )
            if self.audit_key is not None
            else None
        )
        self.bolt = create_app(self)
        self.bot_user_id: str | None = None

    async def start(self) -> None:
        """Check the Slack token, make sure every release in flight has a timer, and start
        the scheduler that runs them (resuming whatever a restart interrupted)."""
        auth: Any = await self.slack_client.auth_test()
        self.bot_user_id = auth.get("user_id")
        for release in await self.service.resume_unfinished():
            log.info("resuming %s after a restart", release.key)
        await self.service.schedule_digests(self.scheduler.next_fire)
        self.scheduler.every(AUDIT_RETRY_EVERY, self.audit_poster.retry_due, "slack_outbox")
        self.scheduler.every(TRIGGER_EXPIRY_EVERY, self.expire_triggers, "slack_triggers")
        if self.checkpoints is not None:
            self.scheduler.every(CHECKPOINT_POLL, self.checkpoints.tick, "audit_checkpoints")
        if self.settings.releasebot_drift_interval > 0:
            self.scheduler.every(self.settings.releasebot_drift_interval, self.drift.run, "drift")
        self.scheduler.start()

    def github_for(self, source: GitHubSource) -> GitHubClient | None:
        """The GitHub client for a policy's ``checks.github``; None when its token is unset."""
        client = self.github.get(source.token_env)
        if client is None:
            token = secret_from_env(source.token_env)
            if token is None:
                return None
            client = GitHubClient(self.settings.github_api_url, token)
            self.github[source.token_env] = client
        return client

    async def expire_triggers(self) -> None:
        """Forget the Slack trigger_ids older than the replay window."""
        try:
            await self.triggers.expire(self.clock.now() - REPLAY_WINDOW)
        except Exception as exc:
            log.warning("could not expire old Slack triggers (%s); next time", exc)

    async def close(self) -> None:
        self.scheduler.shutdown()
        await self.tasks.close()
        if self.checkpoints is not None:
            await self.checkpoints.final()  # the head at shutdown, outside the database
        await self.edge.aclose()
        for client in self.github.values():
            await client.aclose()
        if self.webhooks is not None:
            await self.webhooks.aclose()
        await self.db.dispose()
