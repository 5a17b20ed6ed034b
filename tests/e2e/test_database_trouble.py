"""The PostgreSQL server restarts in the middle of a production rollout.

The bot's pooled connections die with it. The release must still end, succeeded or failed
safe, with Cloudflare serving what the database says, one deployment per step, and an audit
chain that verifies; and the bot must go on serving. Never a release left mid-way with no
process driving it.

This restarts the local cluster on 127.0.0.1:5432 (shared with the other tests, for a second
or two), so it needs ``pg_ctlcluster`` and the right to run it; it always leaves the server
running.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from bot.engine.model import Release
from bot.engine.states import State
from storage.audit import verify_chain
from tests.fixtures.bot import BotHarness
from tests.fixtures.db import POSTGRES_SERVER

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.exclusive]

PG_HOST = make_url(POSTGRES_SERVER).host or "127.0.0.1"
PG_PORT = make_url(POSTGRES_SERVER).port or 5432


@pytest.fixture
def empty_db_url(postgres_url: str) -> str:
    """PostgreSQL only: this is about a database server going away."""
    return postgres_url


def _cluster() -> tuple[str, str] | None:
    """(version, name) of the local cluster serving PG_PORT, from ``pg_lsclusters``."""
    if PG_HOST not in ("127.0.0.1", "localhost") or shutil.which("pg_ctlcluster") is None:
        return None
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=False)
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(PG_PORT):
            return fields[0], fields[1]
    return None


def _ready() -> bool:
    probe = ["pg_isready", "-q", "-h", PG_HOST, "-p", str(PG_PORT)]
    return subprocess.run(probe, check=False).returncode == 0


def _ctl(cluster: tuple[str, str], action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _wait_ready(within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _ready():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def restart_postgres() -> Iterator[Callable[[float], None]]:
    """``restart_postgres(down_for)`` restarts the server (``pg_ctlcluster restart``), or, with
    ``down_for`` seconds, stops it, waits that long and starts it again (a plain restart is
    down for a fraction of a second). Whatever happens, the server runs afterwards."""
    cluster = _cluster()
    if cluster is None:
        pytest.skip(f"no local PostgreSQL cluster on port {PG_PORT} to restart")

    def restart(down_for: float = 0.0) -> None:
        if down_for <= 0:
            done = _ctl(cluster, "restart")
            assert done.returncode == 0, f"pg_ctlcluster restart failed: {done.stderr.strip()}"
        else:
            done = _ctl(cluster, "stop")
            assert done.returncode == 0, f"pg_ctlcluster stop failed: {done.stderr.strip()}"
            time.sleep(down_for)
            done = _ctl(cluster, "start")
            assert done.returncode == 0, f"pg_ctlcluster start failed: {done.stderr.strip()}"
        assert _wait_ready(30), "PostgreSQL did not come back within 30 s"

    try:
        yield restart
    finally:
        if not _wait_ready(5):
            _ctl(cluster, "start")
            assert _wait_ready(30), "PostgreSQL is down after the test and would not start"


def _quietly(check: Callable[[], Any]) -> Callable[[], Any]:
    """A check that counts "the database is restarting" as "not yet"."""

    def run() -> Any:
        with contextlib.suppress(Exception):
            return check()
        return None

    return run


def test_a_postgresql_restart_mid_rollout_ends_the_release_cleanly(
    bot: BotHarness, restart_postgres: Callable[[float], None]
) -> None:
    bot.cf.set_traffic("tax-api", 2000)
    assert bot.command("deploy tax-api v1.4.2 to production").status_code == 200
    bot.wait_for(lambda: (c := bot.card("R-1")) and "Approve" in str(c.blocks), what="the card")
    bot.click("Approve", "R-1", user="U0ALICE")
    bot.wait_for(lambda: "1 of 2" in str(bot.card("R-1").blocks), what="the first approval")
    bot.click("Approve", "R-1", user="U0BOB")
    bot.wait_for(
        lambda: (r := bot.release(1)).state is State.VERIFYING and r.current_step == 0,
        timeout=30,
        what="the 10% step baking",
    )
    # The 50% deployment is made, but Cloudflare's answer takes a second: the server goes
    # down while the bot waits for it, and is still down when the bot comes to record the
    # step it has just deployed.
    bot.cf.inject(
        "POST", r"/workers/scripts/tax-api/deployments$", None, delay=1.0, apply_first=True
    )
    bot.wait_for(lambda: len(bot.cf.deployment_posts) >= 2, timeout=30, what="the 50% deploy")

    restart_postgres(2.0)

    final: Release = bot.wait_for(
        _quietly(lambda: (r := bot.release(1)) and r.state.is_terminal and r),
        timeout=60,
        what="R-1 to end after the restart",
    )
    assert final.state in (State.SUCCEEDED, State.ROLLED_BACK, State.FAILED), final.state
    new = bot.cf.version_id("tax-api", "v1.4.2")
    stable = bot.cf.version_id("tax-api", "v1.4.1")
    splits = [p["body"]["versions"] for p in bot.cf.deployment_posts if p["script"] == "tax-api"]
    assert all(a != b for a, b in itertools.pairwise(splits)), (
        f"a step was deployed twice: {splits}"
    )
    live = bot.cf.active_split("tax-api")
    if final.state is State.SUCCEEDED:
        assert splits == [
            [{"version_id": new, "percentage": 10}, {"version_id": stable, "percentage": 90}],
            [{"version_id": new, "percentage": 50}, {"version_id": stable, "percentage": 50}],
            [{"version_id": new, "percentage": 100}],
        ]
        assert [(v, float(p)) for v, p in live] == [(new, 100.0)]
    else:  # failed safe: the stable version alone, and the channel was told why
        assert [(v, float(p)) for v, p in live] == [(stable, 100.0)], final.outcome
    bot.wait_for(
        lambda: final.state.value.replace("_", " ") in str(bot.card("R-1").blocks).lower(),
        what="the card to show the end",
    )

    # The story in the database is whole, and nothing is left waiting to drive R-1.
    bot.idle()
    actions = [e.action for e in bot.audit(1)]
    assert actions[0] == "release.requested"
    assert actions[-1] == f"release.{final.state.value}", actions
    report = bot.server.call(verify_chain(bot.rt.db))
    assert report.ok, str(report)
    pending = bot.server.call(bot.rt.timers.pending(1, "advance"))
    assert pending == [], f"timers still driving a finished release: {pending}"

    # And the bot goes on: the next release runs on the same pool.
    assert bot.http.get("/readyz").status_code == 200
    assert bot.command("deploy tax-api v1.4.2 to staging").status_code == 200
    bot.wait_for(
        lambda: (r := bot.release(2)) and r.state is State.SUCCEEDED, what="R-2 after the restart"
    )
