"""The smoke test's rules: the deployment that puts the new version beside the stable one
without traffic, and what one probe's answer means.

Cloudflare applies ``Cloudflare-Workers-Version-Overrides`` only to a version that is part
of the current deployment; for any other version the request silently follows the split.
So the new version first joins the deployment at the smallest share Cloudflare accepts —
0%, as ``wrangler versions deploy <new>@0% <stable>@100%`` sends it (``"percentage": 0``;
Cloudflare's version-overrides docs reach "even those set to serve 0% of traffic") — and
only then is its health URL probed with the override. Should Cloudflare refuse 0% as invalid
(the 2024 schema says a share is at least 0.01), the smallest valid share is used instead.

Which version answered is only known when the Worker says so (a header or JSON field, e.g.
its version-metadata binding's id): then an answer from any other version means the
override did not reach the new one (yet: Cloudflare takes a few seconds to apply a new
deployment everywhere). When the Worker does not say, a healthy answer passes, marked as
unconfirmed.

>>> smoke_split("new", "old", 0.0)
(VersionShare(version_id='new', percentage=0.0), VersionShare(version_id='old', percentage=100.0))
>>> judge(ProbeAnswer(True, 200, "ok", "new"), "new", VersionReport(header="x-version"))
Verdict(outcome='confirmed', reason=None)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Literal

from bot.engine.model import ProbeAnswer, Step, VersionReport, VersionShare
from bot.engine.rollout import ProbeRecord

# The shares tried in order for the new version: 0% (what wrangler sends), then the
# smallest the published schema allows, only if Cloudflare refuses 0% as invalid.
SMOKE_SHARES = (0.0, 0.01)
SMOKE_TRIES = 3  # probes of the health URL before the smoke test fails
SMOKE_RETRY = timedelta(seconds=2)  # between two probes (a new deployment takes seconds)
ACTIVE_TRIES = 5  # reads of the active deployment until the 0% deployment is the live one
ACTIVE_RETRY = timedelta(seconds=1)

Outcome = Literal["confirmed", "unconfirmed", "retry"]
Ended = Literal["confirmed", "unconfirmed", "skipped", "failed"]


def smoke_split(new: str, stable: str, share: float) -> tuple[VersionShare, ...]:
    """The new version at ``share`` beside the stable one: in the deployment, out of traffic."""
    return (VersionShare(new, share), VersionShare(stable, 100.0 - share))


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str | None = None


def judge(answer: ProbeAnswer, new_version_id: str, report: VersionReport) -> Verdict:
    """What one probe says about the new version.

    >>> judge(ProbeAnswer(True, 200, "ok", "old"), "new", VersionReport(header="x-v")).outcome
    'retry'
    >>> judge(ProbeAnswer(True, 200, "ok", None), "new", VersionReport()).reason
    'the environment names no version_header or version_field to read it from'
    """
    if answer.version_id is not None and answer.version_id != new_version_id:
        return Verdict(
            "retry",
            f"{answer.version_id[:8]} answered instead of {new_version_id[:8]} "
            "(the version override was not applied)",
        )
    if not answer.ok:
        return Verdict("retry", answer.detail)
    if answer.version_id == new_version_id:
        return Verdict("confirmed")
    if not report.configured:
        return Verdict(
            "unconfirmed",
            "the environment names no version_header or version_field to read it from",
        )
    where = (
        f"header {report.header}"
        if report.header and not report.field
        else f"field {report.field}"
        if report.field and not report.header
        else f"header {report.header} or field {report.field}"
    )
    return Verdict("unconfirmed", f"the answer had no {where}")


@dataclass(frozen=True, slots=True)
class SmokeRecord:
    """What the smoke test did so far; stored in the first step's ``gate`` under ``smoke``
    (so a restart carries on where it was), and read by the card."""

    deployment_id: str | None = None
    share: float | None = None
    active: bool = False
    active_reads: int = 0
    probes: ProbeRecord = field(default_factory=ProbeRecord)
    answered_by: str | None = None
    outcome: Ended | None = None
    reason: str | None = None

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "share": self.share,
            "active": self.active,
            "active_reads": self.active_reads,
            "probes": self.probes.to_dict(),
            "answered_by": self.answered_by,
            "outcome": self.outcome,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SmokeRecord:
        if not isinstance(data, dict):
            return cls()
        share = data.get("share")
        outcome = data.get("outcome")
        return cls(
            deployment_id=_text(data.get("deployment_id")),
            share=float(share) if isinstance(share, int | float) else None,
            active=bool(data.get("active")),
            active_reads=int(data.get("active_reads") or 0),
            probes=ProbeRecord.from_dict(data.get("probes")),
            answered_by=_text(data.get("answered_by")),
            outcome=outcome
            if outcome in ("confirmed", "unconfirmed", "skipped", "failed")
            else None,
            reason=_text(data.get("reason")),
        )

    @classmethod
    def of(cls, step: Step | None) -> SmokeRecord:
        return cls.from_dict((step.gate or {}).get("smoke") if step is not None else None)

    def store(self, step: Step) -> None:
        step.gate = {**(step.gate or {}), "smoke": self.to_dict()}

    def ended(self, outcome: Ended, reason: str | None = None) -> SmokeRecord:
        return replace(self, outcome=outcome, reason=reason)


def smoke_deployment(step: Step) -> str | None:
    """The id of the 0% deployment the smoke test made at ``step`` (the first), if any."""
    return SmokeRecord.of(step).deployment_id


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None
