import pytest

from bot.engine.errors import AmbiguousVersion, UnknownVersion
from bot.engine.model import WorkerVersion
from bot.engine.versions import resolve_version

V1 = WorkerVersion(id="1a2b3c4d-1111-4000-8000-000000000001", tag="v1.4.1")
V2 = WorkerVersion(id="1a2b3c4d-2222-4000-8000-000000000002", tag="v1.4.2")
V3 = WorkerVersion(id="9f9f9f9f-3333-4000-8000-000000000003", tag="v1.4.2")
V4 = WorkerVersion(id="77777777-4444-4000-8000-000000000004", tag=None)


def test_full_id_wins() -> None:
    assert resolve_version(V4.id, [V1, V4], "s") is V4


def test_tag_resolves_to_its_one_version() -> None:
    assert resolve_version("v1.4.1", [V1, V2], "s") is V1


def test_ambiguous_tag_lists_the_candidates() -> None:
    with pytest.raises(AmbiguousVersion) as err:
        resolve_version("v1.4.2", [V2, V3], "tax-api")
    assert err.value.candidates == ["1a2b3c4d (v1.4.2)", "9f9f9f9f (v1.4.2)"]
    assert "use a version id" in str(err.value)


def test_id_prefix_of_eight_characters() -> None:
    assert resolve_version("77777777", [V1, V4], "s") is V4
    with pytest.raises(AmbiguousVersion):
        resolve_version("1a2b3c4d", [V1, V2], "s")


def test_short_prefix_is_not_guessed() -> None:
    with pytest.raises(UnknownVersion) as err:
        resolve_version("7777", [V4], "tax-api")
    assert "tax-api" in str(err.value) and "7777" in str(err.value)
