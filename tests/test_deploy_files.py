"""The deployment files agree with the code: they parse, use the same port, paths and
health endpoints, list every setting, and the container's command really starts the bot."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config.settings import Settings
from bot.service import create_app
from bot.web.setup import CREDENTIAL_KEYS
from tests.service_fixtures import make_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SKIPPED_DIRS = {
    "node_modules",
    ".venv",
    ".git",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "__pycache__",
}
DEFAULT_PORT = Settings.model_fields["port"].default
DATA = "/data"
KNOWN_VARIABLES = {f"BOT_{name.upper()}" for name in Settings.model_fields} | set(CREDENTIAL_KEYS)


def repo_files(*suffixes: str) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = [d for d in subdirs if d not in SKIPPED_DIRS]
        for name in files:
            if name.endswith(suffixes):
                yield Path(directory, name)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def only(keyword: str) -> str:
    [value] = [rest for k, rest in final_stage() if k == keyword]
    return value


def healthcheck_command() -> list[str]:
    command: list[str] = json.loads(only("HEALTHCHECK").split(" CMD ", 1)[1])
    return command


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def k8s(name: str) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(DEPLOY / "kubernetes" / name)
    return data


def container() -> dict[str, Any]:
    [spec] = k8s("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return dict(spec)


@pytest.fixture
async def routed_paths(aiohttp_client: Any, tmp_path: Path) -> set[str]:
    """GET paths the service answers (dry-run, so /setup included)."""
    client = await aiohttp_client(await create_app(make_settings(tmp_path)))
    return {
        resource.canonical
        for resource in client.app.router.resources()
        for route in resource
        if route.method == "GET"
    }


# Everything parses.


def test_every_yaml_and_json_file_parses() -> None:
    checked = 0
    for path in repo_files(".yml", ".yaml"):
        list(yaml.safe_load_all(path.read_text()))
        checked += 1
    for path in repo_files(".json"):
        json.loads(path.read_text())
        checked += 1
    assert checked >= 8  # app.yml, compose, kubernetes, fixtures ...


# Settings.


def test_env_example_lists_every_setting() -> None:
    text = (DEPLOY / ".env.example").read_text()
    missing = [
        name for name in sorted(KNOWN_VARIABLES) if not re.search(rf"^#?\s*{name}=", text, re.M)
    ]
    assert not missing, f"deploy/.env.example lacks {missing}"


def test_deploy_files_name_only_real_settings() -> None:
    for path in [p for p in DEPLOY.rglob("*") if p.is_file()]:
        unknown = set(re.findall(r"\bBOT_[A-Z0-9_]+", path.read_text())) - KNOWN_VARIABLES
        assert not unknown, f"{path.relative_to(ROOT)} names unknown settings {sorted(unknown)}"


# The image.


def test_image_is_multi_stage_non_root_with_a_data_volume() -> None:
    assert sum(1 for keyword, _ in dockerfile() if keyword == "FROM") >= 2
    user = only("USER")
    assert user not in ("root", "0")
    uid = re.search(rf"useradd [^&]*--uid (\d+)[^&]* {user}\b", (DEPLOY / "Dockerfile").read_text())
    assert uid is not None and int(uid.group(1)) != 0
    assert json.loads(only("VOLUME")) == [DATA]
    assert only("EXPOSE") == str(DEFAULT_PORT)
    env = dict(
        shlex.split(pair)[0].split("=", 1) for pair in shlex.split(only("ENV")) if "=" in pair
    )
    assert env["BOT_DB"].startswith(DATA + "/") and env["BOT_ARTIFACT_DIR"].startswith(DATA + "/")
    assert env["BOT_PORT"] == str(DEFAULT_PORT)


def test_image_runs_the_readme_command_with_the_venv_baked_in() -> None:
    command = json.loads(only("CMD"))
    assert command == ["./dev", "serve", "--host", "0.0.0.0"]
    assert "./dev serve" in (ROOT / "README.md").read_text()
    assert only("WORKDIR") == "/app"
    text = (DEPLOY / "Dockerfile").read_text()
    assert "COPY --from=build /app/.venv /app/.venv" in text
    # The stamp that makes `./dev` skip installing is made after pyproject.toml is copied.
    assert text.index("touch /app/.venv/.installed") > text.rindex("COPY pyproject.toml")
    assert 'stamp=".venv/.installed' in (ROOT / "dev").read_text()


def test_healthcheck_probes_the_liveness_endpoint(routed_paths: set[str]) -> None:
    assert "/healthz" in " ".join(healthcheck_command())
    assert {"/healthz", "/readyz", "/setup"} <= routed_paths


def test_the_build_context_holds_what_the_image_copies_and_nothing_secret() -> None:
    allowed = {
        line[1:].removesuffix("/**")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = set()
    for keyword, rest in dockerfile():
        if keyword == "COPY" and not rest.startswith("--from"):
            copied.update(rest.split()[:-1])
    assert copied <= allowed
    assert not {".env", ".venv", "node_modules"} & allowed


# Compose.


def test_compose_matches_the_image_and_the_code() -> None:
    compose = load_yaml(DEPLOY / "compose.yaml")
    [service] = compose["services"].values()
    assert (
        DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]
    ).resolve() == DEPLOY / "Dockerfile"
    assert "command" not in service and "entrypoint" not in service
    [port] = service["ports"]
    assert port.rsplit(":", 1)[1] == str(DEFAULT_PORT)
    assert str(service["environment"]["BOT_PORT"]) == str(DEFAULT_PORT)
    [volume] = service["volumes"]
    name, target = volume.split(":")
    assert target == DATA and name in compose["volumes"]
    assert service["environment"]["BOT_DB"].startswith(DATA + "/")
    assert service["healthcheck"]["test"] == ["CMD", *healthcheck_command()]


# Kubernetes.


def test_kubernetes_probes_port_and_paths_match_the_code(routed_paths: set[str]) -> None:
    spec = container()
    [port] = spec["ports"]
    assert port["containerPort"] == DEFAULT_PORT
    env = {e["name"]: e.get("value") for e in spec["env"]}
    assert env["BOT_PORT"] == str(DEFAULT_PORT)
    assert env["BOT_DB"].startswith(DATA + "/")
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    probed = {
        spec[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probed <= routed_paths
    assert "command" not in spec and "args" not in spec  # the image's CMD: ./dev serve
    mounts = {m["name"]: m["mountPath"] for m in spec["volumeMounts"]}
    assert mounts["data"] == DATA


def test_kubernetes_objects_reference_each_other() -> None:
    deployment = k8s("deployment.yaml")
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    )
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    service = k8s("service.yaml")
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [service_port] = service["spec"]["ports"]
    assert service_port["targetPort"] == container()["ports"][0]["name"]
    claims = {
        v["name"]: v.get("persistentVolumeClaim", {}).get("claimName")
        for v in pod["spec"]["volumes"]
    }
    assert claims["data"] == k8s("pvc.yaml")["metadata"]["name"]
    secret = k8s("secret.template.yaml")
    assert container()["envFrom"][0]["secretRef"]["name"] == secret["metadata"]["name"]
    assert set(secret["stringData"]) <= KNOWN_VARIABLES
    uid = re.search(r"--uid (\d+)", (DEPLOY / "Dockerfile").read_text())
    assert uid is not None and pod["spec"]["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    for resource in k8s("kustomization.yaml")["resources"]:
        assert (DEPLOY / "kubernetes" / resource).is_file()


# systemd.


def test_systemd_unit_is_sandboxed_and_keeps_state_in_its_state_directory() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "systemd" / "agent-dispatch.service").read_text())
    service = unit["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    state = f"/var/lib/{service['StateDirectory']}"
    assert service["WorkingDirectory"] == state  # ./.env, which /setup writes, is state
    assert service["ExecStart"].split()[-1] == "serve"
    text = (DEPLOY / "systemd" / "agent-dispatch.service").read_text()
    env = dict(re.findall(r"^Environment=(BOT_\w+)=(\S+)$", text, re.M))
    assert env["BOT_DB"].startswith(state + "/") and env["BOT_ARTIFACT_DIR"].startswith(state + "/")
    assert env["BOT_PORT"] == str(DEFAULT_PORT)


# The container's command, run for real.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_container_command_starts_the_bot_without_installing(tmp_path: Path) -> None:
    """/app as the image lays it out (dev, pyproject.toml, a venv with its stamp), then the
    image's CMD with the listen address narrowed to loopback for the test."""
    app = tmp_path / "app"
    (app / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "dev", app / "dev")
    shutil.copy(ROOT / "pyproject.toml", app / "pyproject.toml")
    os.utime(app / "pyproject.toml", (time.time() - 60, time.time() - 60))
    for tool in ("python", "agent-dispatch"):
        (app / ".venv" / "bin" / tool).symlink_to(ROOT / ".venv" / "bin" / tool)
    stamp = app / ".venv" / ".installed"
    stamp.touch()
    installed_at = stamp.stat().st_mtime_ns

    command = ["127.0.0.1" if part == "0.0.0.0" else part for part in json.loads(only("CMD"))]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(
        {
            "BOT_PORT": str(port),
            "BOT_DB": str(tmp_path / "bot.sqlite3"),
            "BOT_REDELIVERY_INTERVAL_MINUTES": "0",
        }
    )
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if get(base + "/healthz") == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        assert get(base + "/readyz") == 200
        # No App yet: registration is offered, to whoever has the token from the log.
        assert get(base + "/setup") == 403
        token = re.search(r"/setup\?token=([\w-]+)", (tmp_path / "serve.log").read_text())
        assert token is not None and get(f"{base}/setup?token={token.group(1)}") == 200
        check = [
            sys.executable if part.endswith("/python") else part for part in healthcheck_command()
        ]
        assert subprocess.run(check, env=env, timeout=10).returncode == 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    assert stamp.stat().st_mtime_ns == installed_at, "./dev reinstalled the package"
    assert not (app / ".venv" / "lib").exists()
    # The first start generated the webhook secret into ./.env, readable by its owner only.
    assert (app / ".env").stat().st_mode & 0o777 == 0o600


# The guide.


@pytest.mark.parametrize(
    "topic",
    [
        "/setup",
        "smee",
        ".backup",
        "WAL",
        "Enterprise Server",
        "TLS",
        "docker compose",
        "kubectl",
        "systemctl",
        "upgrad",
    ],
)
def test_the_deploy_guide_covers(topic: str) -> None:
    assert topic in (ROOT / "docs" / "deploy.md").read_text()
