"""``releasebot dev``'s terminal console, driven through a pseudo-terminal as a person types:
deploy to staging and to production, approve as alice, reject as bob (answering the reason
the bot asks for), ``show`` — the process stays up, and the card counts the vote.

The console only runs when its standard input is a terminal, so the test gives it one
(``pty``) and reads what it prints there.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.processes import RELEASEBOT
from tests.fixtures.servers import free_ports

pytestmark = pytest.mark.slow

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A process on a pseudo-terminal: ``type`` a line, ``expect`` a pattern in what it
    prints after the previous match."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.fd, replica = pty.openpty()
        env = {**os.environ, "TERM": "dumb", "COLUMNS": "200", "NO_COLOR": "1"}
        self.proc = subprocess.Popen(
            args, stdin=replica, stdout=replica, stderr=replica, cwd=cwd, env=env,
            start_new_session=True,
        )  # fmt: skip
        os.close(replica)
        self.output = ""
        self.seen = 0  # what expect() has consumed

    def _read(self, within: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], within)
        if ready:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # the other side is gone
                return
            self.output += _ANSI.sub("", chunk.decode(errors="replace").replace("\r", ""))

    def expect(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        wanted = re.compile(pattern)
        while True:
            found = wanted.search(self.output, self.seen)
            if found:
                self.seen = found.end()
                return found
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self._read(0.2)
                found = wanted.search(self.output, self.seen)
                if found:
                    self.seen = found.end()
                    return found
                raise AssertionError(f"{pattern!r} not printed; the terminal shows:\n{self.output}")
            self._read(0.1)

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        os.close(self.fd)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    port = free_ports(3)
    args = [str(RELEASEBOT), "dev", "--port", str(port), "--data", str(tmp_path / "data")]
    term = Terminal(args, tmp_path)
    try:
        yield term
    finally:
        term.close()


def card_of(term: Terminal, key: str, state: str) -> str:
    """The next print of ``key``'s card in ``state`` (up to its closing dates line)."""
    found = term.expect(rf"┃ {key} · [^\n]*\n(?:(?!┃)[^\n]*\n)*?[^\n]*State: [^\n]*{state}")
    rest = term.expect(r"· Requested [^\n]*\n")
    return term.output[found.start() : rest.end()]


def test_deploy_approve_reject_and_show_through_a_terminal(terminal: Terminal) -> None:
    term = terminal
    term.expect(r"carol> ", timeout=30)
    term.type("/release deploy tax-api v1.4.2 to staging")
    card_of(term, "R-1", "Succeeded")

    term.type("/release deploy tax-api v1.4.2 to production")
    asked = term.expect(r"(R-\d+) · tax-api v1.4.2 → production|freeze")
    if asked.group(0) == "freeze":  # a weekend: only a break-glass deploy goes out
        term.type('/release deploy tax-api v1.4.2 to production --emergency --reason "hotfix"')
        asked = term.expect(r"(R-\d+) · tax-api v1.4.2 → production")
    key = asked.group(1)
    term.expect(r"Awaiting approval")
    # the example's security scan of v1.4.2 is still running: Approve waits until it is green
    term.expect(r"\*Checks:\* all green", timeout=60)

    term.type("as alice")
    term.expect(r"you are now alice")
    term.type(f"click Approve {key}")
    approved = card_of(term, key, "Awaiting approval")
    assert re.search(r"Policy: production: 1 of 2 approvals: @alice", approved), approved
    term.expect(rf"@alice approved {key} \(1 of 2\)")

    term.type("as bob")
    term.expect(r"you are now bob")
    term.type(f"click Reject {key}")
    question = term.expect(r"\? \[y/N\] |Why is it rejected\?: ")
    if question.group(0).endswith("[y/N] "):  # the button asks "are you sure?" first
        term.type("y")
        term.expect(r"Why is it rejected\?: ")
    term.type("the receipts page is blank")
    term.expect(r"rejected by @bob: the receipts page is blank")

    # The thread's line can come before the card's edit (the card is re-rendered on its own
    # worker): ``show`` prints the card as the stand-in holds it now, so ask until it changed.
    deadline = time.monotonic() + 20
    while True:
        term.type("show")
        shown = term.expect(rf"┃ {key} · [^\n]*\n(?:[^\n]*\n)*?\s*bob> ")
        again = term.output[shown.start() : shown.end()]
        if "Awaiting approval" not in again or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "1 of 2 approvals: @alice" in again, again
    assert "rejected: the receipts page is blank" in again, again

    term.type("who")
    term.expect(r"bob \(U0BOB\)")
    assert term.proc.poll() is None, term.output
    assert "Traceback" not in term.output and "Error" not in term.output, term.output

    term.type("quit")
    assert term.proc.wait(15) == 0, term.output
