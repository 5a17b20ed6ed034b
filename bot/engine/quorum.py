"""Who counts: membership of approver and deployer lists (users and Slack groups), what a
policy requires, and whether the votes given meet it. Plain arithmetic, used by the policy
decision and by the views that show a tally."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.config import Policy
from bot.engine.migrations import MigrationPlan
from bot.engine.model import Kind, Release, Vote

Members = Mapping[str, set[str]]


@dataclass(frozen=True, slots=True)
class Requirement:
    """``required`` approvals from ``approvers`` (users and groups) under one policy."""

    policy: str
    required: int
    approvers: tuple[str, ...]
    allow_self_approval: bool = False


def listed(user_id: str, ids: Sequence[str], members: Members) -> bool:
    """True when ``user_id`` is one of ``ids`` or in one of the groups among them.

    >>> listed("U2", ["S1", "U9"], {"S1": {"U2"}})
    True
    """
    return any(entry == user_id or user_id in members.get(entry, set()) for entry in ids)


def deployers_of(policy: Policy) -> list[str] | None:
    """The ids allowed to deploy; None means everyone."""
    if policy.deployers is not None:
        return list(policy.deployers)
    return None if policy.approvals_required == 0 else list(policy.approvers)


def requirement_of(name: str, policy: Policy) -> Requirement:
    return Requirement(
        name, policy.approvals_required, tuple(policy.approvers), policy.allow_self_approval
    )


def counted(release: Release, votes: Sequence[Vote]) -> list[Vote]:
    """The votes that count: approvals of this release's exact version."""
    return [v for v in votes if v.approve and v.version_id == release.version_id]


def approvals_met(
    requirements: Sequence[Requirement],
    given: Sequence[Vote],
    members: Members,
    at_least: int = 0,
) -> bool:
    """Every requirement has its approvals from its own approvers, and there are as many as
    the strictest asks for (and ``at_least``)."""
    if len(given) < max([at_least, *(r.required for r in requirements)]):
        return False
    return all(
        sum(1 for v in given if listed(v.user_id, r.approvers, members)) >= r.required
        for r in requirements
    )


def release_requirements(
    release: Release, policies: Mapping[str, Policy], env_policy: str, emergency_policy: str
) -> tuple[Requirement, ...]:
    """What approving ``release`` takes: its policy's requirement, and for a break-glass deploy
    the emergency policy's too (the stricter wins; both apply) — as for a deploy whose
    migrations the lint flagged (``destructive: approve``)."""
    own = requirement_of(release.policy, policies[release.policy])
    plan = MigrationPlan.from_dict(release.migrations)
    stricter = release.emergency or (plan is not None and plan.destructive)
    if release.kind is Kind.DEPLOY and stricter and emergency_policy != release.policy:
        extra = requirement_of(emergency_policy, policies[emergency_policy])
        return (own, extra)
    return (own,)
