"""Action and block ids the app sends and listens for (one place, so they cannot drift)."""

APPROVE = "release_approve"
REJECT = "release_reject"
PROMOTE = "release_promote"
PAUSE = "release_pause"
RESUME = "release_resume"
ROLL_BACK = "release_roll_back"
REJECT_MODAL = "release_reject_modal"
REJECT_REASON_BLOCK = "reject_reason"
REJECT_REASON_INPUT = "reason"

CARD_ACTIONS = (APPROVE, REJECT, PROMOTE, PAUSE, RESUME, ROLL_BACK)


def action_value(release_id: int, version_id: str) -> str:
    """A button's value binds it to one release and one exact Worker version."""
    return f"{release_id}:{version_id}"


def parse_action_value(value: str) -> tuple[int, str]:
    """Inverse of :func:`action_value`; ValueError on anything else."""
    rid, _, version = value.partition(":")
    if not rid.isdigit() or not version:
        raise ValueError(f"not a release button value: {value[:40]!r}")
    return int(rid), version
