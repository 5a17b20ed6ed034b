"""Health summaries: one in the thread after each successful release, and the policies'
``health_digest`` posted to the release channel on their cron schedule."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.config import Config
from bot.engine.model import AuditEntry, Kind, Release, Timer
from bot.engine.notices import Digest, DigestRow, HealthSummary
from bot.engine.ports import Analytics, ReleaseRepository, TimerRepository
from bot.engine.reading import Reading
from bot.engine.recorder import BOT_ACTOR, Recorder
from bot.engine.states import State

log = logging.getLogger("releasebot.engine")

SUMMARY = "summary"
DIGEST = "digest"
FIRST_DIGEST_WINDOW = timedelta(hours=24)
NextFire = Callable[[str, datetime], datetime]


# Without a rollout (a staging policy) there is no verify window: the summary waits this long,
# so that it has traffic to speak of rather than "0 min, no requests yet".
SUMMARY_WITHOUT_ROLLOUT = timedelta(minutes=5)


def summary_delay(config: Config, release: Release) -> timedelta:
    """The final verify window: the policy's ``verify_window``, else its bake, else
    :data:`SUMMARY_WITHOUT_ROLLOUT`."""
    env = config.services[release.service].environments[release.environment]
    rollout = config.policies[env.policy].rollout
    if rollout is None:
        return SUMMARY_WITHOUT_ROLLOUT
    return rollout.verify_window or rollout.bake


class Digests:
    def __init__(
        self,
        config: Config,
        repo: ReleaseRepository,
        timers: TimerRepository,
        analytics: Analytics,
        reading: Reading,
        recorder: Recorder,
        next_fire: NextFire | None = None,
    ) -> None:
        self.config = config
        self.repo = repo
        self.timers = timers
        self.analytics = analytics
        self.reading = reading
        self.recorder = recorder
        self.clock = recorder.clock
        self.next_fire = next_fire

    def summary_delay(self, release: Release) -> timedelta:
        return summary_delay(self.config, release)

    async def post_summary(self, release_id: int) -> None:
        release = await self.repo.get(release_id)
        if release is None or release.state is not State.SUCCEEDED:
            return
        last = release.steps[-1] if release.steps else None
        since = (last.deployed_at if last else None) or release.finished_at or self.clock.now()
        now = self.clock.now()
        try:
            metrics = await self.analytics.version_metrics(release.script, since, now)
        except Exception as exc:  # a summary is informative; its absence must not break anything
            log.warning("no health summary for %s: %s", release.key, exc)
            return
        minutes = max(int((now - since).total_seconds() // 60), 0)
        await self.recorder.say(HealthSummary(release, minutes, metrics.get(release.version_id)))

    # -- digests ----------------------------------------------------------------------------

    async def schedule_digests(self, next_fire: NextFire) -> None:
        """Make sure each policy with a ``health_digest`` has its next digest as a timer."""
        pending = {t.payload.get("policy") for t in await self.timers.pending_kind(DIGEST)}
        now = self.clock.now()
        for name, policy in self.config.policies.items():
            if policy.health_digest and name not in pending:
                due = next_fire(policy.health_digest, now)
                await self.timers.schedule(DIGEST, due, None, {"policy": name})

    async def run_digest(self, timer: Timer) -> None:
        name = str(timer.payload.get("policy", ""))
        policy = self.config.policies.get(name)
        if policy is None or not policy.health_digest:
            return
        now = self.clock.now()
        since_text = timer.payload.get("since")
        since = (
            datetime.fromisoformat(since_text)
            if isinstance(since_text, str)
            else now - FIRST_DIGEST_WINDOW
        )
        await self.recorder.say(await self.digest(name, since, now))
        entry = AuditEntry(actor=BOT_ACTOR, action="digest.posted", at=now, detail={"policy": name})
        await self.recorder.record([entry])
        if self.next_fire is not None:
            await self.timers.schedule(
                DIGEST,
                self.next_fire(policy.health_digest, now),
                None,
                {"policy": name, "since": now.isoformat()},
            )

    async def digest(self, policy_name: str, since: datetime, now: datetime) -> Digest:
        rows = []
        for service, spec in self.config.services.items():
            for env_name, env in spec.environments.items():
                if env.policy == policy_name:
                    rows.append(await self._row(service, env_name, since, now))
        return Digest(policy_name, since, tuple(rows), await self.reading.stats(None, 7))

    async def _row(self, service: str, env: str, since: datetime, now: datetime) -> DigestRow:
        try:
            live = await self.reading.live(service, env)
        except Exception as exc:
            return DigestRow(service, env, (), unreadable=str(exc))
        shares = tuple(
            (
                s.version_id,
                live.versions[s.version_id].tag if s.version_id in live.versions else None,
                s.percentage,
            )
            for s in (live.deployment.versions if live.deployment else ())
        )
        requests: int | None = None
        rate: float | None = None
        error: str | None = None
        try:
            metrics = await self.analytics.version_metrics(live.script, since, now)
            requests = sum(m.requests for m in metrics.values())
            errors = sum(m.errors for m in metrics.values())
            rate = errors / requests if requests else 0.0
        except Exception as exc:
            error = str(exc)
        recent = [
            r
            for r in await self.repo.history(service, env, 200)
            if r.finished_at is not None and r.finished_at >= since
        ]
        deploys = sum(1 for r in recent if r.state is State.SUCCEEDED and r.kind is Kind.DEPLOY)
        rollbacks = sum(
            1 for r in recent if r.state is State.ROLLED_BACK or r.kind is Kind.ROLLBACK
        )
        return DigestRow(service, env, shares, requests, rate, error, deploys, rollbacks)
