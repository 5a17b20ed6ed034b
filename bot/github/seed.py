"""The example repositories the stand-in starts with in ``releasebot dev``: the history
behind the Cloudflare simulator's example versions v1.4.0-v1.4.2, with pull requests,
reviews, check runs and D1 migration files."""

from __future__ import annotations

from bot.github.standin_state import GitHubState

EXAMPLE_REPOSITORIES = ("battleborn/tax-api", "battleborn/tax-web")
CHECKS = ("ci", "codeql")
DEMO_SCAN_SECONDS = 20.0

# (tag, pull request title, its author, its reviewer, the commits' files)
_HISTORY: tuple[tuple[str, str, str, str, dict[str, bytes | None]], ...] = (
    (
        "v1.4.0",
        "Quarterly filing export",
        "ana",
        "ben",
        {
            "wrangler.toml": b'name = "tax-api"\n',
            "migrations/0001_create_filings.sql": b"CREATE TABLE filings (id INTEGER);\n",
        },
    ),
    (
        "v1.4.1",
        "Fix rounding in VAT totals",
        "ben",
        "ana",
        {"src/vat.ts": b"export const round = (x: number) => Math.round(x * 100) / 100;\n"},
    ),
    (
        "v1.4.2",
        "Faster receipt search",
        "ana",
        "ben",
        {
            "src/receipts.ts": b"export const search = () => [];\n",
            "migrations/0002_receipts_index.sql": b"CREATE INDEX filings_id ON filings(id);\n",
        },
    ),
)


def seed_example(state: GitHubState, demo: bool = False) -> dict[str, dict[str, str]]:
    """Seed each example repository; returns ``{repository: {tag: head sha}}``.

    Each release is one merged pull request of two commits, reviewed by someone other than
    its author. Every check of v1.4.0 and v1.4.1 passed; of v1.4.2, ``ci`` passed and
    ``codeql`` is still running. With ``demo`` (``releasebot dev``) that scan finishes by
    itself 20 s after the bot first reads it: green for tax-api, red for tax-web."""
    heads: dict[str, dict[str, str]] = {}
    for repository in EXAMPLE_REPOSITORIES:
        state.add_repo(repository)
        found: dict[str, str] = {}
        for tag, title, author, reviewer, files in _HISTORY:
            first = state.commit(repository, f"{title}: first pass", author=author)
            head = state.commit(
                repository, f"{title}\n\nReady for {tag}.", author=author, files=files
            )
            number = state.open_pull(repository, title, author, [first, head])
            state.review(repository, number, reviewer, "APPROVED")
            for name in CHECKS:
                if tag == "v1.4.2" and name == "codeql" and demo:
                    outcome = "failure" if repository.endswith("tax-web") else "success"
                    state.run_for_a_while(repository, head, name, DEMO_SCAN_SECONDS, outcome)
                elif tag == "v1.4.2" and name == "codeql":
                    state.set_check(repository, head, name, "in_progress")
                else:
                    state.set_check(repository, head, name, "completed", "success")
            found[tag] = head
        heads[repository] = found
        state.tags[repository] = dict(found)
    return heads
