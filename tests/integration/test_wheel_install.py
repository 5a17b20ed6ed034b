"""The built wheel, installed alone into a fresh virtual environment with only the runtime
lock's dependencies (as the Dockerfile and a production install do it), runs every shipped
command that needs no credentials: ``--version``, ``config check``, ``sim cloudflare``
(answering an API request) and ``dev`` (serving ``/healthz``). Nothing here may import a
development tool, or anything only the source tree has."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot import __version__
from tests.fixtures.servers import free_port, free_ports

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin folder of a fresh venv holding the runtime lock and the wheel, nothing else."""
    work = tmp_path_factory.mktemp("wheel")
    # A copy of the tree: building writes build/ and *.egg-info, never into the checkout.
    source = work / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", "tests"
        ),
    )
    # The build runs on this venv's setuptools (a version the licence expression needs).
    run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--wheel-dir", work / "dist", source, cwd=work,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("releasebot-*.whl")
    assert wheel.name.startswith(f"releasebot-{__version__}-")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=work)
    pip = venv / "bin" / "pip"
    run(
        pip, "install", "--quiet", "--require-hashes", "-r", REPO / "requirements.lock",
        cwd=work,
    )  # fmt: skip
    run(pip, "install", "--quiet", "--no-deps", wheel, cwd=work)
    yield venv / "bin"


def test_the_wheel_carries_its_data_files_and_licence(installed: Path) -> None:
    (wheel,) = installed.parent.parent.glob("dist/releasebot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "bot/cloudflare/openapi_subset.json",
        "bot/cloudflare/contract_additions.json",
        "bot/github/openapi_subset.json",
        "bot/dev/static/console.js",
        "storage/migrations/env.py",
        "storage/migrations/script.py.mako",
    ):
        assert needed in names, needed
    assert any(n.startswith("storage/migrations/versions/") for n in names)
    assert any(n.endswith(".data/data/share/releasebot/releasebot.example.yml") for n in names)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: LicenseRef-Proprietary" in text


def test_nothing_but_the_runtime_lock_is_installed(installed: Path, tmp_path: Path) -> None:
    listed = run(installed / "pip", "list", "--format=freeze", cwd=tmp_path).stdout
    names = {line.split("==")[0].lower().replace("_", "-") for line in listed.splitlines()}
    for dev_tool in ("pytest", "ruff", "mypy", "hypothesis", "playwright", "openapi-core"):
        assert dev_tool not in names


def test_version(installed: Path, tmp_path: Path) -> None:
    done = run(installed / "releasebot", "--version", cwd=tmp_path)
    assert done.stdout.strip() == f"releasebot {__version__}"


def test_config_check(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "releasebot.yml"
    shutil.copy(REPO / "releasebot.example.yml", config)
    done = run(installed / "releasebot", "config", "check", config, cwd=tmp_path)
    assert done.stdout.startswith(f"{config}: OK (")


def _serve(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)}
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _get_when_up(url: str, proc: subprocess.Popen[str], **kwargs: object) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{proc.communicate()[0]}")
        try:
            return httpx.get(url, timeout=2, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_sim_cloudflare_answers_a_request(installed: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = _serve(
        [str(installed / "releasebot"), "sim", "cloudflare", "--port", str(port)], tmp_path
    )
    try:
        health = _get_when_up(f"http://127.0.0.1:{port}/__sim/state", proc)
        assert health.status_code == 200
        account = health.json()["account_id"]
        url = f"http://127.0.0.1:{port}/client/v4/accounts/{account}/tokens/verify"
        answer = httpx.get(url, timeout=10, headers={"Authorization": "Bearer any"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["success"] is True
    finally:
        out = _stop(proc)
    assert "Traceback" not in out, out


def test_dev_serves_healthz(installed: Path, tmp_path: Path) -> None:
    port = free_ports(3)
    args = [str(installed / "releasebot"), "dev", "--port", str(port), "--no-console"]
    proc = _serve([*args, "--data", str(tmp_path / "data")], tmp_path)
    try:
        health = _get_when_up(f"http://127.0.0.1:{port}/healthz", proc)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "version": __version__}
    finally:
        out = _stop(proc)
    assert "Traceback" not in out, out
    assert re.search(r"releasebot dev: bot http://127\.0\.0\.1:\d+", out), out
