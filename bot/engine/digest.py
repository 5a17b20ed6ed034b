"""Health summaries: one in the thread after each successful release, and the policies'
``health_digest`` posted to the release channel on their cron schedule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.engine.core import log
from bot.engine.model import AuditEntry, Kind, Release, Timer
from bot.engine.reading import Reading
from bot.engine.states import State
from bot.engine.stats import stats_text

SUMMARY = "summary"
DIGEST = "digest"
FIRST_DIGEST_WINDOW = timedelta(hours=24)
NextFire = Callable[[str, datetime], datetime]


class Digests(Reading):
    def summary_delay(self, release: Release) -> timedelta:
        """The final verify window: the policy's ``verify_window``, else its bake, else now."""
        rollout = self.config.policies[
            self.config.services[release.service].environments[release.environment].policy
        ].rollout
        if rollout is None:
            return timedelta(0)
        return rollout.verify_window or rollout.bake

    async def schedule_summary(self, release: Release) -> None:
        if release.kind is Kind.DEPLOY and release.id is not None:
            due = self.clock.now() + self.summary_delay(release)
            await self.timers.schedule(SUMMARY, due, release.id)

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
        m = metrics.get(release.version_id)
        minutes = max(int((now - since).total_seconds() // 60), 0)
        if m is None or m.requests == 0:
            text = (
                f":stethoscope: {release.key} health after {minutes} min at 100%: no requests yet."
            )
        else:
            text = (
                f":stethoscope: {release.key} health after {minutes} min at 100%: "
                f"{m.requests:,} requests, {m.error_rate:.2%} errors"
            )
            if m.cpu_time_p99_us is not None:
                text += f", CPU p99 {m.cpu_time_p99_us / 1000:.1f} ms"
        await self._say(release, text)

    # -- digests ----------------------------------------------------------------------------

    async def schedule_digests(self, next_fire: NextFire) -> None:
        """Make sure each policy with a ``health_digest`` has its next digest as a timer."""
        pending = {t.payload.get("policy") for t in await self.timers.pending_kind(DIGEST)}
        now = self.clock.now()
        for name, policy in self.config.policies.items():
            if policy.health_digest and name not in pending:
                due = next_fire(policy.health_digest, now)
                await self.timers.schedule(DIGEST, due, None, {"policy": name})

    async def run_digest(self, timer: Timer, next_fire: NextFire | None) -> None:
        name = str(timer.payload.get("policy", ""))
        policy = self.config.policies.get(name)
        if policy is None or not policy.health_digest:
            return
        now = self.clock.now()
        text = await self.digest_text(name, timer.payload.get("since"), now)
        await self.notifier.announce(text)
        entry = AuditEntry(
            actor="releasebot", action="digest.posted", at=now, detail={"policy": name}
        )
        await self.repo.append_audit([entry])
        if next_fire is not None:
            await self.timers.schedule(
                DIGEST,
                next_fire(policy.health_digest, now),
                None,
                {"policy": name, "since": now.isoformat()},
            )

    async def digest_text(self, policy_name: str, since_text: object, now: datetime) -> str:
        since = (
            datetime.fromisoformat(since_text)
            if isinstance(since_text, str)
            else now - FIRST_DIGEST_WINDOW
        )
        lines = [f"*Health digest* ({policy_name}) since {since:%Y-%m-%d %H:%M} UTC"]
        for service, spec in self.config.services.items():
            for env_name, env in spec.environments.items():
                if env.policy != policy_name:
                    continue
                lines.append(await self._digest_line(service, env_name, since, now))
        lines.append(stats_text(await self.stats(None, 7)))
        return "\n".join(lines)

    async def _digest_line(self, service: str, env: str, since: datetime, now: datetime) -> str:
        head = f"*{service}/{env}*"
        try:
            live = await self.live(service, env)
        except Exception as exc:
            return f"{head}: :warning: {exc}"
        shares = live.deployment.versions if live.deployment else ()
        label = (
            " + ".join(
                f"`{s.version_id[:8]}`"
                + (
                    f" ({live.versions[s.version_id].tag})"
                    if s.version_id in live.versions and live.versions[s.version_id].tag
                    else ""
                )
                + f" {s.percentage:g}%"
                for s in shares
            )
            or "nothing deployed"
        )
        numbers = ""
        try:
            metrics = await self.analytics.version_metrics(live.script, since, now)
            requests = sum(m.requests for m in metrics.values())
            errors = sum(m.errors for m in metrics.values())
            rate = errors / requests if requests else 0.0
            numbers = f" · {requests:,} requests, {rate:.2%} errors"
        except Exception as exc:
            numbers = f" · analytics unavailable ({exc})"
        recent = [
            r
            for r in await self.repo.history(service, env, 200)
            if r.finished_at is not None and r.finished_at >= since
        ]
        deploys = sum(1 for r in recent if r.state is State.SUCCEEDED and r.kind is Kind.DEPLOY)
        rollbacks = sum(
            1 for r in recent if r.state is State.ROLLED_BACK or r.kind is Kind.ROLLBACK
        )
        return f"{head}: {label}{numbers} · {deploys} deploys, {rollbacks} rollbacks"
