"""APScheduler wiring only: a tick that runs due durable timers. The work is the engine's."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger("releasebot.scheduler")

TICK_SECONDS = 0.25
BATCH = 100
MAX_BATCHES = 10


class Scheduler:
    def __init__(
        self, service: Any, tasks: Any, tick: float = TICK_SECONDS, webhooks: Any = None
    ) -> None:
        self.service = service
        self.tasks = tasks
        self.webhooks = webhooks  # bot.webhooks.WebhookSender | None
        self._running: set[int] = set()  # ids of timers running in this process
        self.tick_seconds = tick
        self._scheduler = AsyncIOScheduler(timezone="UTC")

    def start(self) -> None:
        self._scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.tick_seconds,
            id="timers",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        if self.webhooks is not None:
            self._scheduler.add_job(
                self.deliver_webhooks,
                "interval",
                seconds=1,
                id="webhooks",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        self._scheduler.start()

    async def deliver_webhooks(self) -> None:
        """Send due webhook events (leased in the database: replicas never send the same one)."""
        try:
            await self.webhooks.deliver_due(self.service.clock.now())
        except Exception:
            log.exception("delivering webhooks failed; retrying at the next tick")

    async def tick(self) -> None:
        """Claim every due timer (leased in the database, so replicas never run the same one),
        in batches, and run each in its own task: a burst of due timers all start this tick."""
        for _ in range(MAX_BATCHES):
            try:
                now = self.service.clock.now()
                claimed = await self.service.timers.claim_due(
                    now, self.service.owner, self.service.driver.lease, BATCH
                )
            except Exception as exc:
                log.warning(
                    "claiming due timers failed (%s); retrying at the next tick", type(exc).__name__
                )
                return
            for timer in claimed:
                if timer.id in self._running:
                    # Re-leased to us while still running here (a slow run outlived its
                    # lease): the running copy keeps it; a second would drive it twice.
                    continue
                self._running.add(timer.id)
                self.tasks.spawn(self._run(timer), name=f"timer:{timer.kind}:{timer.id}")
            if len(claimed) < BATCH:
                return

    async def _run(self, timer: Any) -> None:
        try:
            await self.service.run_timer(timer)
        finally:
            self._running.discard(timer.id)

    def every(self, seconds: float, job: Any, job_id: str) -> None:
        """Run async ``job`` (it logs its own errors) every ``seconds``, never two at once."""
        self._scheduler.add_job(
            job,
            "interval",
            seconds=seconds,
            id=job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    @staticmethod
    def next_fire(cron: str, after: datetime) -> datetime:
        """When a 5-field cron expression (UTC) fires next after ``after``."""
        fire = CronTrigger.from_crontab(cron, timezone="UTC").get_next_fire_time(None, after)
        assert fire is not None
        return fire if fire > after else after + timedelta(minutes=1)

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
