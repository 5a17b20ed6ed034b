"""The diff card's rules: what changes between the live version and the candidate."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.cloudflare import parse
from bot.engine.diff import MAX_COMMITS, VersionDiff, pull_number, version_diff
from bot.engine.model import Binding, VersionRuntime, WorkerVersion
from bot.engine.source import CommitSummary, Comparison
from bot.slack.blocks.diff import diff_lines

T1 = datetime(2026, 12, 1, tzinfo=UTC)
T2 = datetime(2026, 12, 2, tzinfo=UTC)
LIVE_RT = VersionRuntime(
    bindings=(
        Binding("API_KEY", "secret_text"),
        Binding("CACHE", "kv_namespace", "ns-1"),
        Binding("FILES", "r2_bucket", "files"),
        Binding("OLD_TOKEN", "secret_text"),
    ),
    compatibility_date="2024-09-23",
    compatibility_flags=("nodejs_compat",),
    usage_model="standard",
    migration_tag="v1",
)


def version(vid: str, tag: str | None, when: datetime, rt: VersionRuntime | None) -> WorkerVersion:
    return WorkerVersion(id=vid, tag=tag, created_on=when, runtime=rt)


def live() -> WorkerVersion:
    return version("live-0001", "v1.4.1", T1, LIVE_RT)


def test_nothing_changed_is_an_empty_diff() -> None:
    diff = version_diff(live(), version("cand-0001", "v1.4.2", T2, LIVE_RT))
    assert diff.empty and not diff.migration and diff.downgrade is None


def test_bindings_added_removed_and_changed_by_name_and_type() -> None:
    rt = VersionRuntime(
        bindings=(
            Binding("API_KEY", "secret_text"),
            Binding("CACHE", "kv_namespace", "ns-2"),  # another namespace
            Binding("QUEUE", "queue", "jobs"),
            Binding("NEW_SECRET", "secret_text"),
        ),
        compatibility_date="2024-09-23",
        compatibility_flags=("nodejs_compat",),
        usage_model="standard",
        migration_tag="v1",
    )
    diff = version_diff(live(), version("cand-0001", "v1.4.2", T2, rt))
    assert diff.bindings_added == (Binding("QUEUE", "queue", "jobs"),)
    assert diff.bindings_removed == (Binding("FILES", "r2_bucket", "files"),)
    assert [(c.name, c.before.target, c.after.target) for c in diff.bindings_changed] == [
        ("CACHE", "ns-1", "ns-2")
    ]
    # secrets are names only, and apart from the other bindings
    assert diff.secrets_added == ("NEW_SECRET",)
    assert diff.secrets_removed == ("OLD_TOKEN",)


def test_compatibility_usage_model_and_migration_tag() -> None:
    rt = VersionRuntime(
        bindings=LIVE_RT.bindings,
        compatibility_date="2025-01-15",
        compatibility_flags=("nodejs_als",),
        usage_model="unbound",
        migration_tag="v2",
    )
    diff = version_diff(live(), version("cand-0001", "v1.5.0", T2, rt))
    assert (diff.compatibility_date.before, diff.compatibility_date.after) == (  # type: ignore[union-attr]
        "2024-09-23",
        "2025-01-15",
    )
    assert diff.flags_added == ("nodejs_als",) and diff.flags_removed == ("nodejs_compat",)
    assert diff.usage_model is not None and diff.usage_model.after == "unbound"
    assert diff.migration and diff.migration_tag is not None
    assert (diff.migration_tag.before, diff.migration_tag.after) == ("v1", "v2")


def test_a_downgrade_by_tag_or_by_upload_time() -> None:
    older_tag = version_diff(live(), version("cand-0001", "v1.3.9", T2, LIVE_RT))
    assert older_tag.downgrade is not None and "v1.3.9" in older_tag.downgrade
    earlier = version_diff(
        live(), version("cand-0001", None, datetime(2026, 11, 1, tzinfo=UTC), LIVE_RT)
    )
    assert earlier.downgrade == "it was uploaded before the live version"
    newer = version_diff(live(), version("cand-0001", "v1.10.0", T2, LIVE_RT))
    assert newer.downgrade is None  # semver, not text: 1.10 is after 1.4


def test_more_than_twenty_commits_lists_the_newest_and_counts_the_rest() -> None:
    commits = tuple(CommitSummary(f"{i:040x}", f"Change {i} (#{i})", f"dev{i}") for i in range(30))
    diff = version_diff(
        live(),
        version("cand-0001", "v1.4.2", T2, LIVE_RT),
        Comparison("ahead", 30, 0, 30, commits, "https://github.com/x/y/compare"),
    )
    assert len(diff.commits) == MAX_COMMITS and diff.more_commits == 10
    assert diff.commits[0].title == "Change 29 (#29)" and diff.commits[0].pull == 29
    assert diff.commits[0].author == "dev29"


def test_without_github_the_cloudflare_side_still_shows() -> None:
    rt = VersionRuntime(bindings=(*LIVE_RT.bindings, Binding("DB", "d1", "db-1")))
    diff = version_diff(
        live(), version("cand-0001", "v1.4.2", T2, rt), commits_unknown="GitHub is not configured"
    )
    assert diff.bindings_added == (Binding("DB", "d1", "db-1"),)
    assert diff.commits == () and diff.commits_unknown == "GitHub is not configured"


def test_the_diff_survives_storage() -> None:
    rt = VersionRuntime(bindings=(Binding("Q", "queue", "jobs"),), migration_tag="v2")
    diff = version_diff(
        live(), version("cand-0001", "v1.3.0", T2, rt), Comparison("behind", 0, 2, 0, (), None)
    )
    assert VersionDiff.from_dict(diff.to_dict()) == diff


def test_pull_numbers_from_merge_messages() -> None:
    assert pull_number("Faster receipt search (#12)") == 12
    assert pull_number("Merge pull request #7 from ana/branch") == 7
    assert pull_number("Fix #3 in the parser") is None


def test_the_version_detail_is_read_into_the_runtime() -> None:
    detail = {
        "id": "v-1",
        "metadata": {"created_on": "2026-12-01T00:00:00Z"},
        "resources": {
            "bindings": [
                {"type": "kv_namespace", "name": "CACHE", "namespace_id": "ns-1"},
                {"type": "secret_text", "name": "API_KEY"},
            ],
            "script_runtime": {
                "compatibility_date": "2024-09-23",
                "compatibility_flags": ["nodejs_compat"],
                "usage_model": "standard",
                "migration_tag": "v3",
            },
        },
    }
    found = parse.version(detail).runtime
    assert found is not None
    assert found.bindings == (
        Binding("API_KEY", "secret_text"),
        Binding("CACHE", "kv_namespace", "ns-1"),
    )
    assert found.migration_tag == "v3" and found.usage_model == "standard"
    assert parse.version({"id": "v-1"}).runtime is None  # a list item carries none


def test_a_downgrade_counts_the_commits_it_takes_out() -> None:
    diff = version_diff(
        live(),
        version("cand-0001", "v1.3.9", T2, LIVE_RT),
        Comparison("behind", 0, 3, 0, (), "https://github.com/x/y/compare"),
    )
    assert diff.commits_behind == 3
    assert VersionDiff.from_dict(diff.to_dict()) == diff
    text = diff_lines(diff) or ""
    assert ":arrow_down: 3 commits live has that the candidate lacks" in text
