"""Rollback rules: choosing the version to go back to, and Cloudflare's refusals in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.engine.model import Deployment, VersionShare
from bot.engine.rollback import previous_stable, refusal_in_words

T0 = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


def _dep(name: str, minutes: int | None, *shares: tuple[str, float]) -> Deployment:
    """A deployment ``minutes`` after T0 (None: undated) serving ``shares``."""
    created = T0 + timedelta(minutes=minutes) if minutes is not None else None
    return Deployment(name, tuple(VersionShare(v, p) for v, p in shares), created_on=created)


PREVIOUS_STABLE_CASES = [
    ("nothing deployed", [], None, None),
    ("only the current deployment", [_dep("d1", 0, ("v1", 100))], None, None),
    (
        "the deployment before",
        [_dep("d2", 10, ("v2", 100)), _dep("d1", 0, ("v1", 100))],
        None,
        "v1",
    ),
    (
        "splits in between are passed over",
        [
            _dep("d4", 30, ("v2", 100)),
            _dep("d3", 20, ("v2", 50), ("v1", 50)),
            _dep("d2", 10, ("v2", 10), ("v1", 90)),
            _dep("d1", 0, ("v1", 100)),
            _dep("d0", -10, ("v0", 100)),
        ],
        None,
        "v1",
    ),
    (
        "rolling back a canary in progress",
        [_dep("d2", 10, ("v2", 10), ("v1", 90)), _dep("d1", 0, ("v1", 100))],
        "v2",
        "v1",
    ),
    (
        "listed out of order: sorted by created_on",
        [
            _dep("d0", -10, ("v0", 100)),
            _dep("d2", 10, ("v2", 100)),
            _dep("d1", 0, ("v1", 100)),
        ],
        None,
        "v1",
    ),
    (
        "the same version deployed again is not a rollback",
        [
            _dep("d3", 20, ("v2", 100)),
            _dep("d2", 10, ("v2", 100)),
            _dep("d1", 0, ("v1", 100)),
        ],
        None,
        "v1",
    ),
    (
        "the version being rolled back is skipped even if it once served 100%",
        [
            _dep("d3", 20, ("v3", 10), ("v2", 90)),
            _dep("d2", 10, ("v3", 100)),
            _dep("d1", 0, ("v2", 100)),
        ],
        "v3",
        "v2",
    ),
    (
        "no earlier stable deployment",
        [
            _dep("d3", 20, ("v2", 100)),
            _dep("d2", 10, ("v2", 50), ("v1", 50)),
            _dep("d1", 0, ("v2", 100)),
        ],
        None,
        None,
    ),
    (
        "only splits before",
        [_dep("d2", 10, ("v2", 100)), _dep("d1", 0, ("v2", 10), ("v1", 90))],
        None,
        None,
    ),
    (
        "undated deployments keep the listed order (newest first), after dated ones",
        [
            _dep("d3", None, ("v3", 100)),
            _dep("d2", None, ("v2", 100)),
            _dep("d1", None, ("v1", 100)),
        ],
        None,
        "v2",
    ),
]


@pytest.mark.parametrize(
    ("deployments", "current", "expected"),
    [c[1:] for c in PREVIOUS_STABLE_CASES],
    ids=[c[0] for c in PREVIOUS_STABLE_CASES],
)
def test_previous_stable(
    deployments: list[Deployment], current: str | None, expected: str | None
) -> None:
    assert previous_stable(deployments, current) == expected


def test_previous_stable_mixes_naive_and_aware_times() -> None:
    naive = Deployment("d1", (VersionShare("v1", 100),), created_on=datetime(2026, 3, 14, 11, 0))
    aware = _dep("d2", 0, ("v2", 100))
    assert previous_stable([naive, aware]) == "v1"


# -- refusals -------------------------------------------------------------------------------

TARGET = "v1.4.1 (0f9e8d7c)"
NO_D1 = " A Worker rollback does not restore D1 data."
SECRETS = (
    "Cloudflare refused to put v1.4.1 (0f9e8d7c) back because secrets changed since that "
    "version was deployed (code 10220): it would run with today's secrets, so going back "
    "needs a forced deployment."
)
TOO_OLD = (
    "Cloudflare cannot deploy v1.4.1 (0f9e8d7c) any more: only the 100 most recent versions "
    "can be deployed; roll forward to a named version with `/release deploy`."
)

REFUSAL_CASES = [
    (
        "secrets changed, force not allowed",
        [10220],
        "Secrets changed since version: API_KEY",
        False,
        SECRETS + " Cloudflare said: “Secrets changed since version: API_KEY”. This policy does "
        "not allow forced rollbacks; roll forward instead to a named version that works with "
        "the current secrets, with `/release deploy`." + NO_D1,
    ),
    (
        "secrets changed, force allowed",
        [10220],
        "",
        True,
        SECRETS + " This policy allows a forced rollback, so it can be retried with force." + NO_D1,
    ),
    ("version not found", [10007], "Version not found", False, TOO_OLD + NO_D1),
    (
        "too old, said in words only",
        [10021],
        "Only the last 100 versions can be deployed",
        False,
        TOO_OLD + NO_D1,
    ),
    (
        "Durable Object migration",
        [10021],
        "Cannot roll back past a Durable Object migration",
        False,
        "Cloudflare refused to put v1.4.1 (0f9e8d7c) back: a Durable Object migration ran after "
        "that version, and a Worker cannot be rolled back across a migration. Roll forward with "
        "a version built for the migrated classes, with `/release deploy`. Cloudflare said: "
        "“Cannot roll back past a Durable Object migration”." + NO_D1,
    ),
    (
        "deleted binding",
        [10021],
        "binding MY_BUCKET refers to a deleted R2 bucket",
        False,
        "Cloudflare refused to put v1.4.1 (0f9e8d7c) back: it binds a resource (a KV namespace, "
        "R2 bucket, queue or similar) that has since been deleted or changed. Recreate the "
        "resource, or roll forward to a named version with `/release deploy`. Cloudflare said: "
        "“binding MY_BUCKET refers to a deleted R2 bucket”." + NO_D1,
    ),
    (
        "anything else is quoted",
        [10002, 10013],
        "internal\nerror",
        False,
        "Cloudflare refused to put v1.4.1 (0f9e8d7c) back (code 10002, 10013): “internal error”."
        + NO_D1,
    ),
    (
        "nothing to go on",
        [],
        "  ",
        False,
        "Cloudflare refused to put v1.4.1 (0f9e8d7c) back: no reason given." + NO_D1,
    ),
]


@pytest.mark.parametrize(
    ("codes", "message", "force", "expected"),
    [c[1:] for c in REFUSAL_CASES],
    ids=[c[0] for c in REFUSAL_CASES],
)
def test_refusal_in_words(codes: list[int], message: str, force: bool, expected: str) -> None:
    assert refusal_in_words(codes, message, TARGET, force_allowed=force) == expected


def test_refusal_offers_the_database_restore_when_a_bookmark_exists() -> None:
    text = refusal_in_words([10007], "Version not found", TARGET, bookmark_release_key="R-42")
    assert text == TOO_OLD + (
        " A Worker rollback does not restore D1 data; the database can be put back to where it "
        "was before R-42 with `/release restore-db R-42`."
    )


def test_refusal_uses_the_configured_command() -> None:
    text = refusal_in_words([10007], "", TARGET, command="/ship", bookmark_release_key="R-1")
    assert "`/ship deploy`" in text
    assert "`/ship restore-db R-1`" in text
    assert "/release" not in text


def test_refusal_quotes_a_long_message_clipped() -> None:
    text = refusal_in_words([10002], "x" * 1000, TARGET)
    quoted = text.split("“")[1].split("”")[0]
    assert len(quoted) == 300
    assert quoted.endswith("…")


def test_secrets_code_wins_over_the_words() -> None:
    text = refusal_in_words([10007, 10220], "version not found", TARGET)
    assert text.startswith(SECRETS)


def test_docstring_examples_hold() -> None:
    import doctest

    from bot.engine import rollback as module

    assert doctest.testmod(module).failed == 0
