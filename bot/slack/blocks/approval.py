"""The approval request in a card's thread: the ask with its buttons, and once the release is
decided the same message with the buttons replaced by who decided."""

from __future__ import annotations

from collections.abc import Sequence

from bot.engine.model import Release, Vote
from bot.engine.states import State
from bot.slack import ids
from bot.slack.blocks.card import reject_confirm
from bot.slack.blocks.common import Block, button, context, section
from bot.slack.text import mention

UNDECIDED = (State.REQUESTED, State.AWAITING_APPROVAL)


def approval_request(release: Release, text: str) -> list[Block]:
    """The ask (``text``, mrkdwn already escaped) with Approve and Reject."""
    blocks = [section(text)]
    if release.id is not None:
        value = ids.action_value(release.id, release.version_id)
        blocks.append(
            {
                "type": "actions",
                "block_id": f"approval-{release.id}",
                "elements": [
                    button("Approve", ids.APPROVE, value, "primary"),
                    button("Reject", ids.REJECT, value, "danger", reject_confirm(release)),
                ],
            }
        )
    return blocks


def decision_line(release: Release, votes: Sequence[Vote]) -> str | None:
    """Who decided the release (mrkdwn), or None while it still waits for approvals."""
    if release.state in UNDECIDED:
        return None
    approvers = [v.user_id for v in votes if v.approve]
    by = ", ".join(mention(u) for u in dict.fromkeys(approvers))
    if release.state is State.EXPIRED:
        return ":alarm_clock: Expired without enough approvals" + (
            f" (approved by {by})" if by else ""
        )
    if release.state is State.CANCELLED:
        verb = "Rejected" if (release.outcome or "").startswith("rejected") else "Cancelled"
        who = f" by {mention(release.ended_by)}" if release.ended_by else ""
        return f":no_entry_sign: {verb}{who}"
    if by:
        return f":white_check_mark: Approved by {by}"
    return ":white_check_mark: Approved"


def decided_request(text: str, line: str) -> list[Block]:
    """The ask as it reads after the decision: no buttons, who decided instead."""
    return [section(text), context(line)]
