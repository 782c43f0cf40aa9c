"""The package as a user gets it: `python -m build` makes an sdist and a wheel (the wheel
built from the sdist, so the sdist is complete), and the wheel installed into a fresh venv
outside the repository, with its dependencies from the hashed lock, runs `--version`,
`triage --offline` and `serve`. Also: the lock files agree with pyproject.toml."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
PINNED = re.compile(r"^([A-Za-z0-9_.\-]+)==([^ \\]+) \\$", re.MULTILINE)
HASHED = re.compile(r"^\S+==\S+ \\\n(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", re.MULTILINE)


def pins(lock: str) -> dict[str, str]:
    return {
        canonicalize_name(name): version
        for name, version in PINNED.findall((ROOT / lock).read_text())
    }


def declared(extra: str | None = None) -> list[Requirement]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
    return [Requirement(spec) for spec in names]


@pytest.mark.parametrize(
    ("lock", "extra"), [("requirements.lock", None), ("requirements-test.lock", "test")]
)
def test_lock_pins_every_declared_dependency_within_its_range(lock: str, extra: str | None) -> None:
    locked = pins(lock)
    for requirement in declared(extra):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in {lock}: run ./dev lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{lock} pins {name}=={locked[name]}, outside {requirement}: run ./dev lock"
        )
    text = (ROOT / lock).read_text()
    hashed = HASHED.findall(text)
    assert len(hashed) == len(re.findall(r"^\S+==", text, re.MULTILINE)) == len(locked), (
        f"a pin without hashes in {lock}: run ./dev lock"
    )


def test_service_and_test_locks_agree_on_shared_packages() -> None:
    """`./dev serve` after `./dev test` uses the test venv: the versions must be the same."""
    service, tests = pins("requirements.lock"), pins("requirements-test.lock")
    assert {name: tests.get(name) for name in service} == service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the lock's packages and the wheel (not the checkout) installed."""
    place = tmp_path_factory.mktemp("user")
    subprocess.run([sys.executable, "-m", "venv", str(place / "venv")], check=True)
    pip = [str(place / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(
        [*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock")],
        check=True,
        timeout=600,
    )
    (wheel,) = dist.glob("*.whl")
    subprocess.run([*pip, "--no-deps", str(wheel)], check=True, timeout=300)
    yield place


def user_env(place: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "PYTHON"))}
    env["BOT_DB"] = str(place / "bot.sqlite3")
    return env


def run(place: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(place / "venv" / "bin" / "agent-dispatch"), *args],
        cwd=place,
        env=user_env(place),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sdist_and_wheel_carry_the_templates_and_the_manifest(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "bot").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    missing = sources - names
    assert not missing, (
        f"not in the wheel: {sorted(missing)}: add the package to [tool.setuptools] packages "
        "(and data files to package-data) in pyproject.toml"
    )
    templates = {p.relative_to(ROOT / "prompts") for p in (ROOT / "prompts").rglob("*.j2")}
    assert {f"bot/templates/{t}" for t in templates} <= names
    assert "bot/manifest/app.yml" in names
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"app.yml", "pyproject.toml", "README.md"} <= members
    assert {f"prompts/{t}" for t in templates} <= members


@pytest.mark.slow
def test_installed_wheel_runs_outside_the_repository(venv: Path) -> None:
    where = subprocess.run(
        [str(venv / "venv" / "bin" / "python"), "-c", "import bot; print(bot.__file__)"],
        cwd=venv,
        env=user_env(venv),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv / "venv")), where

    version = run(venv, "--version")
    assert version.returncode == 0 and re.fullmatch(r"agent-dispatch \S+\n", version.stdout)

    imported = run(venv, "issues", "import", str(FIXTURES / "peft-436.export.json"))
    assert imported.returncode == 0, imported.stderr
    triage = run(venv, "triage", "--offline", "436", "--prompt-out", "prompt.md")
    assert triage.returncode == 0, triage.stderr
    prompt = (venv / "prompt.md").read_text()
    assert "#436" in prompt and len(prompt) > 500

    port = free_port()
    env = user_env(venv) | {"BOT_PORT": str(port), "BOT_REDELIVERY_INTERVAL_MINUTES": "0"}
    server = subprocess.Popen(
        [str(venv / "venv" / "bin" / "agent-dispatch"), "serve"],
        cwd=venv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.communicate()[0]
                assert time.monotonic() < deadline, "serve did not answer /healthz in 30 s"
                time.sleep(0.1)
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0]
    assert "Traceback" not in output, output
