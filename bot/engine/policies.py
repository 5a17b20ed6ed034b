"""Who may do what, as pure functions: each returns the reason for a refusal, or None.

Group membership is resolved by the caller (Slack user groups) and passed in as
``members``: ``{group_id: {user ids}}`` for the groups a policy names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from bot.config import Policy
from bot.engine.model import Release, Vote
from bot.engine.states import State

Members = Mapping[str, set[str]]

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


def listed(user_id: str, ids: Iterable[str], members: Members) -> bool:
    """True when ``user_id`` is one of ``ids`` or in one of the groups among them.

    >>> listed("U2", ["S1", "U9"], {"S1": {"U2"}})
    True
    """
    return any(entry == user_id or user_id in members.get(entry, set()) for entry in ids)


def mention(ids: Iterable[str]) -> str:
    """Slack mentions of users and user groups."""
    return ", ".join(f"<!subteam^{i}>" if i.startswith("S") else f"<@{i}>" for i in ids)


def deployers_of(policy: Policy) -> list[str] | None:
    """The ids allowed to deploy; None means everyone."""
    if policy.deployers is not None:
        return list(policy.deployers)
    return None if policy.approvals_required == 0 else list(policy.approvers)


def deploy_refusal(policy_name: str, policy: Policy, user_id: str, members: Members) -> str | None:
    allowed = deployers_of(policy)
    if allowed is None or listed(user_id, allowed, members):
        return None
    return f"only {mention(allowed)} may deploy or roll back under the {policy_name} policy"


def approvals(release: Release, votes: Sequence[Vote]) -> list[Vote]:
    """The votes that count: approvals of this release's exact version."""
    return [v for v in votes if v.approve and v.version_id == release.version_id]


def vote_refusal(
    release: Release,
    policy: Policy,
    votes: Sequence[Vote],
    user_id: str,
    version_id: str,
    members: Members,
    now: datetime,
) -> str | None:
    """Why ``user_id`` may not approve or reject ``release`` now (None: they may)."""
    if version_id != release.version_id:
        return (
            f"this button was for version {version_id[:8]}, but {release.key} is for "
            f"{release.version_id[:8]}; approvals never carry over to another version"
        )
    if release.state in _DECIDED:
        return f"{release.key} is {_DECIDED[release.state]}; there is nothing to decide"
    if release.state is not State.AWAITING_APPROVAL:
        return f"{release.key} is not waiting for approval"
    if release.expires_at is not None and now >= release.expires_at:
        return f"{release.key} has expired; ask for a new release"
    if not listed(user_id, policy.approvers, members):
        return f"only {mention(policy.approvers)} may decide on {release.key}"
    if user_id == release.requested_by and not policy.allow_self_approval:
        return f"you requested {release.key}; someone else has to approve it"
    if any(v.user_id == user_id for v in votes):
        return f"your decision on {release.key} is already recorded"
    return None


def cancel_refusal(release: Release, user_id: str, policy: Policy, members: Members) -> str | None:
    if release.state.is_terminal:
        return f"{release.key} is already over ({release.state.value.replace('_', ' ')})"
    if release.state in (State.DEPLOYING, State.VERIFYING):
        return f"{release.key} is already deploying; use pause or roll back instead"
    if user_id != release.requested_by and not listed(user_id, policy.approvers, members):
        return f"only the requester or an approver may cancel {release.key}"
    return None


def progress_line(release: Release, votes: Sequence[Vote]) -> str:
    """``1 of 2 approvals: <@U0ALICE>``."""
    given = approvals(release, votes)
    names = ", ".join(f"<@{v.user_id}>" for v in given)
    line = f"{len(given)} of {release.approvals_required} approvals"
    return f"{line}: {names}" if names else line
