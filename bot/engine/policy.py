"""The one decision for every action that changes or holds an environment.

``decide(ask, facts)`` is pure: it takes what a person asks for (:class:`Ask`) and what is true
right now (:class:`Facts`: the policies, the groups, the freeze, the lock, the release, what ran
in the environment before, ...) and answers :class:`Allowed`, :class:`NeedsApprovals` or
:class:`Refusal`. Every command and button goes through it (by way of
:class:`bot.engine.facts.Gatekeeper`, which reads the facts); nothing else decides.

The rules, in short:

- deploy: the actor is a deployer of the environment's policy; a freeze refuses it unless
  ``--emergency``; ``--emergency`` only while a freeze applies, with a reason, and then the
  stricter of the environment's and the emergency policy (both approval requirements apply);
  the staging-first rule compares what will run (the script's content), not only the tag,
  and each pending D1 migration (by file name and content hash); a migration the lint flags
  as breaking the running version is refused under ``destructive: refuse`` and needs the
  emergency policy's approvals as well under ``destructive: approve``.
- rollback: a deployer; only to a version that was at 100% in that environment before;
  approvals as the policy says (``rollback_without_approval``), a reason where it is required.
- restore-db: the requester of the release whose bookmark it is, an approver of the
  emergency policy or a deployer; always under the emergency policy's approvals.
- promote, pause, resume: the requester, an approver or a deployer, while it rolls out.
- cancel: the requester or an approver, before it deploys.
- approve, reject: a listed approver (not the requester unless self-approval is allowed), once,
  for the version the button was for, while the release awaits approval; an approval only
  once the policy's pre-deploy checks are all green (or were skipped for a break-glass deploy).
- lock, unlock: a deployer of that service/environment.
- freeze, unfreeze: a deployer of every service that has the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.config import Policy
from bot.engine.checks import ChecksReport, approval_blocker
from bot.engine.freezes import FreezeWindow, describe
from bot.engine.migrations import MigrationPlan
from bot.engine.model import Kind, LockRecord, Release, Vote
from bot.engine.quorum import (
    Members,
    Requirement,
    deployers_of,
    listed,
    requirement_of,
)
from bot.engine.states import State
from bot.engine.words import Code, Words, people, words


class Action(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "roll back"
    RESTORE_DB = "restore-db"
    PROMOTE = "promote"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    APPROVE = "approve"
    REJECT = "reject"
    LOCK = "lock"
    UNLOCK = "unlock"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"


CONTROLS = frozenset({Action.PROMOTE, Action.PAUSE, Action.RESUME})


@dataclass(frozen=True, slots=True)
class Grant:
    """One service/environment and the policy that governs it."""

    service: str
    environment: str
    policy_name: str
    policy: Policy


@dataclass(frozen=True, slots=True)
class Ask:
    """What a person asks for."""

    action: Action
    actor: str
    emergency: bool = False
    reason: str | None = None
    version_id: str | None = None  # deploy/rollback target; the version a vote button was for


@dataclass(frozen=True, slots=True)
class Facts:
    """What is true now, as far as the decision needs it (read by the gatekeeper)."""

    grants: tuple[Grant, ...]  # one; for freeze/unfreeze every service with the environment
    members: Members
    now: datetime
    freeze: FreezeWindow | None = None
    lock: LockRecord | None = None
    release: Release | None = None  # the release acted on (controls, votes, cancel, restore)
    votes: tuple[Vote, ...] = ()
    emergency: Requirement | None = None  # the emergency policy's requirement
    emergency_policy: str | None = None
    ran_before: frozenset[str] = frozenset()  # versions at 100% there before (rollback)
    live_version: str | None = None  # the version alone at 100% now
    rolling_out: Release | None = None  # a release changing traffic there now (rollback)
    staging_refusal: Words | None = None  # the staging-first rule's objection, if any
    requirements: tuple[Requirement, ...] = ()  # a release's approval requirements (votes)
    migrations: MigrationPlan | None = None  # a deploy's pending D1 migrations and findings
    destructive: str = "refuse"  # the environment's rule for flagged migrations
    migration_refusal: Words | None = None  # the staging-first objection to a migration


@dataclass(frozen=True, slots=True)
class Allowed:
    note: str | None = None


@dataclass(frozen=True, slots=True)
class NeedsApprovals:
    """Allowed once ``requirements`` are met (each of them: the stricter policy wins)."""

    requirements: tuple[Requirement, ...]

    @property
    def required(self) -> int:
        return max((r.required for r in self.requirements), default=0)

    @property
    def policy(self) -> str:
        return self.requirements[0].policy


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Words

    def __str__(self) -> str:
        return str(self.reason)


Decision = Allowed | NeedsApprovals | Refusal


# -- who may deploy ---------------------------------------------------------------------


def _deployer_refusal(grant: Grant, actor: str, members: Members) -> Refusal | None:
    allowed = deployers_of(grant.policy)
    if allowed is None or listed(actor, allowed, members):
        return None
    return Refusal(
        words(
            "only ",
            people(allowed),
            f" may deploy or roll back under the {grant.policy_name} policy",
        )
    )


_DECIDED = {
    State.APPROVED: "already approved",
    State.DEPLOYING: "already approved and deploying",
    State.VERIFYING: "already approved and rolling out",
    State.SUCCEEDED: "already released",
    State.ROLLED_BACK: "already over (rolled back)",
    State.FAILED: "already over (failed)",
    State.CANCELLED: "cancelled",
    State.EXPIRED: "expired",
}


def _vote(ask: Ask, facts: Facts) -> Decision:
    release = facts.release
    assert release is not None
    clicked = ask.version_id or release.version_id
    if clicked != release.version_id:
        return Refusal(
            words(
                f"this button was for version {clicked[:8]}, but {release.key} is for "
                f"{release.version_id[:8]}; approvals never carry over to another version"
            )
        )
    if release.state in _DECIDED:
        return Refusal(words(f"{release.key} is {_DECIDED[release.state]}; nothing to decide"))
    if release.state is not State.AWAITING_APPROVAL:
        return Refusal(words(f"{release.key} is not waiting for approval"))
    if release.expires_at is not None and facts.now >= release.expires_at:
        return Refusal(words(f"{release.key} has expired; ask for a new release"))
    approvers = [a for r in facts.requirements for a in r.approvers]
    if not listed(ask.actor, approvers, facts.members):
        return Refusal(
            words("only ", people(dict.fromkeys(approvers)), f" may decide on {release.key}")
        )
    self_ok = all(r.allow_self_approval for r in facts.requirements)
    if ask.actor == release.requested_by and not self_ok:
        return Refusal(words(f"you requested {release.key}; someone else has to approve it"))
    if any(v.user_id == ask.actor for v in facts.votes):
        return Refusal(words(f"your decision on {release.key} is already recorded"))
    if ask.action is Action.APPROVE and _checks_apply(facts, release):
        blocker = approval_blocker(ChecksReport.from_dict(release.checks))
        if blocker is not None:
            return Refusal(words(f"{release.key} cannot be approved: {blocker}"))
    return Allowed()


def _checks_apply(facts: Facts, release: Release) -> bool:
    """Whether the release's policy has pre-deploy checks: deploys only (a rollback or a
    restore goes back to what ran before; a rejection never waits for them)."""
    if release.kind is not Kind.DEPLOY:
        return False
    return any(g.policy_name == release.policy and g.policy.checks for g in facts.grants)


# -- the decision ------------------------------------------------------------------------


def decide(ask: Ask, facts: Facts) -> Decision:
    """Allowed, needs approvals under a policy, or refused with the reason."""
    match ask.action:
        case Action.DEPLOY:
            return _deploy(ask, facts)
        case Action.ROLLBACK:
            return _rollback(ask, facts)
        case Action.RESTORE_DB:
            return _restore(ask, facts)
        case Action.PROMOTE | Action.PAUSE | Action.RESUME:
            return _control(ask, facts)
        case Action.CANCEL:
            return _cancel(ask, facts)
        case Action.APPROVE | Action.REJECT:
            return _vote(ask, facts)
        case Action.LOCK | Action.UNLOCK | Action.FREEZE | Action.UNFREEZE:
            return _rails(ask, facts)
    raise ValueError(f"unknown action {ask.action!r}")  # pragma: no cover


def _deploy(ask: Ask, facts: Facts) -> Decision:
    (grant,) = facts.grants
    refusal = _deployer_refusal(grant, ask.actor, facts.members)
    if refusal:
        return refusal
    window = facts.freeze
    if ask.emergency:
        if window is None:
            return Refusal(
                words(
                    f"--emergency is for a change freeze, and {grant.environment} is not "
                    "frozen; deploy without it, under the ",
                    Code(grant.policy_name),
                    " policy",
                )
            )
        if not (ask.reason or "").strip():
            return Refusal(words('a break-glass deploy needs a reason: add --reason "..."'))
    elif window is not None:
        override = facts.emergency_policy or grant.policy_name
        return Refusal(
            words(
                f"{grant.environment} is ",
                describe(window),
                ". For a break-glass release add "
                f'--emergency --reason "..."; it needs the {override} approvals as well.',
            )
        )
    if facts.staging_refusal is not None:
        return Refusal(facts.staging_refusal)
    if facts.migration_refusal is not None:
        return Refusal(facts.migration_refusal)
    plan = facts.migrations
    destructive = plan is not None and plan.destructive
    if destructive and facts.destructive != "approve":
        assert plan is not None
        name, first = plan.findings[0]
        return Refusal(
            words(
                f"{len(plan.findings)} migration statement(s) would break the running version, "
                "first in ",
                Code(name),
                f": {first.detail}. {grant.environment} has destructive: refuse; make the "
                "change in steps the running version survives (add, deploy, then remove)",
            )
        )
    needed = [requirement_of(grant.policy_name, grant.policy)]
    if (ask.emergency or destructive) and facts.emergency is not None:
        if facts.emergency.policy != grant.policy_name:
            needed.append(facts.emergency)
        # break-glass, or a destructive migration, is never without a second person
        if max(r.required for r in needed) == 0:
            needed = [Requirement(r.policy, 1, r.approvers, r.allow_self_approval) for r in needed]
    if max(r.required for r in needed) == 0:
        return Allowed()
    return NeedsApprovals(tuple(needed))


def _rollback(ask: Ask, facts: Facts) -> Decision:
    (grant,) = facts.grants
    refusal = _deployer_refusal(grant, ask.actor, facts.members)
    if refusal:
        return refusal
    policy = grant.policy
    if policy.rollback_requires_reason and not (ask.reason or "").strip():
        return Refusal(
            words(f'a rollback in {grant.environment} needs a reason: add --reason "..."')
        )
    target = ask.version_id
    if facts.rolling_out is not None:
        if target is not None and target != facts.rolling_out.stable_version_id:
            return Refusal(
                words(
                    f"{facts.rolling_out.key} is rolling out there; roll it back first (without "
                    "a version: it goes back to what was live before it)"
                )
            )
    elif target is not None:
        if target not in facts.ran_before:
            return Refusal(
                words(
                    Code(target[:8]),
                    f" never ran in {grant.environment}; deploy it instead: a rollback only "
                    "goes back to a version that served all traffic there before",
                )
            )
        if target == facts.live_version:
            return Refusal(
                words(
                    Code(target[:8]), f" already serves 100% of {grant.service}/{grant.environment}"
                )
            )
    if policy.rollback_without_approval or policy.approvals_required == 0:
        return Allowed()
    return NeedsApprovals((requirement_of(grant.policy_name, policy),))


def _restore(ask: Ask, facts: Facts) -> Decision:
    (grant,) = facts.grants
    source = facts.release
    assert source is not None
    if not source.d1_bookmark:
        return Refusal(words(f"{source.key} took no D1 bookmark; there is nothing to restore"))
    emergency = facts.emergency or requirement_of(grant.policy_name, grant.policy)
    may = ask.actor == source.requested_by or listed(ask.actor, emergency.approvers, facts.members)
    if not may:
        refusal = _deployer_refusal(grant, ask.actor, facts.members)
        if refusal:
            return refusal
    if emergency.required == 0:
        return Allowed()
    return NeedsApprovals((emergency,))


def _control(ask: Ask, facts: Facts) -> Decision:
    (grant,) = facts.grants
    release = facts.release
    assert release is not None
    if not (
        ask.actor == release.requested_by
        or listed(ask.actor, grant.policy.approvers, facts.members)
    ):
        refusal = _deployer_refusal(grant, ask.actor, facts.members)
        if refusal:
            return refusal
    if release.state not in (State.DEPLOYING, State.VERIFYING):
        state = release.state.value.replace("_", " ")
        return Refusal(words(f"{release.key} is not rolling out (it is {state})"))
    if ask.action is Action.PAUSE and release.paused:
        return Refusal(words(f"{release.key} is already paused"))
    if ask.action is Action.RESUME and not release.paused:
        return Refusal(words(f"{release.key} is not paused"))
    if ask.action is Action.PROMOTE and release.paused:
        return Refusal(words(f"resume {release.key} first"))
    return Allowed()


def may_steer_release(
    grant: Grant, release: Release, actor: str, members: Members
) -> Refusal | None:
    """Roll back a release in flight: the same people as its controls."""
    if actor == release.requested_by or listed(actor, grant.policy.approvers, members):
        return None
    return _deployer_refusal(grant, actor, members)


def _cancel(ask: Ask, facts: Facts) -> Decision:
    release = facts.release
    assert release is not None
    if release.state.is_terminal:
        return Refusal(
            words(f"{release.key} is already over ({release.state.value.replace('_', ' ')})")
        )
    if release.state in (State.DEPLOYING, State.VERIFYING):
        return Refusal(words(f"{release.key} is already deploying; use pause or roll back instead"))
    approvers = [a for r in facts.requirements for a in r.approvers]
    if ask.actor != release.requested_by and not listed(ask.actor, approvers, facts.members):
        return Refusal(words(f"only the requester or an approver may cancel {release.key}"))
    return Allowed()


def _rails(ask: Ask, facts: Facts) -> Decision:
    if not facts.grants:
        return Refusal(words("no service has that environment"))
    for grant in facts.grants:
        refusal = _deployer_refusal(grant, ask.actor, facts.members)
        if refusal is not None:
            if len(facts.grants) > 1:
                return Refusal(
                    words(
                        f"{grant.environment} is shared by {len(facts.grants)} services; "
                        f"to {ask.action.value} it you need to be a deployer of each, and for "
                        f"{grant.service}/{grant.environment} ",
                        refusal.reason,
                    )
                )
            return refusal
    return Allowed()
