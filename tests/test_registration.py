"""The /setup registration flow, end to end against the fake GitHub."""

from __future__ import annotations

import json
import logging
import stat
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.config.settings import Settings
from bot.github import GitHubFactory
from bot.observability.metrics import Metrics
from bot.service import create_app
from bot.web.setup import (
    PRIVATE_KEY_FILE,
    REGISTRATION,
    PendingStates,
    build_manifest,
    load_manifest,
    new_app_url,
    updated_env,
)
from tests import service_fixtures
from tests.conftest import FAST_RETRIES
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import make_settings

bot_client = service_fixtures.bot_client  # the service under test, with `settings` below

PUBLIC_URL = "https://bot.example.com"


class Forms(HTMLParser):
    """The page's forms: action, method and named inputs."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": a.get("method"), "inputs": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value")


@pytest.fixture
def settings(tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Dry-run settings aimed at the fake; the env file is ./.env, so work in tmp_path."""
    monkeypatch.chdir(tmp_path)
    for key in ("BOT_APP_ID", "BOT_PRIVATE_KEY", "BOT_PRIVATE_KEY_PATH", "BOT_WEBHOOK_SECRET"):
        monkeypatch.delenv(key, raising=False)
    return make_settings(tmp_path, github_api_url=fake_github.url, public_url=PUBLIC_URL + "/")


def setup_path(client: TestClient, query: str = "") -> str:
    """/setup with the setup token the service printed (and `query`, e.g. "?org=x")."""
    token = client.app[REGISTRATION].token
    return f"/setup?token={token}" + (f"&{query.removeprefix('?')}" if query else "")


async def start(client: TestClient, query: str = "") -> tuple[str, dict[str, Any]]:
    """Open /setup; returns the GitHub form's action and the manifest it posts."""
    response = await client.get(setup_path(client, query))
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    github_form = Forms(await response.text()).forms[0]
    assert github_form["method"] == "post"
    return github_form["action"], json.loads(github_form["inputs"]["manifest"])


def state_of(action: str) -> str:
    return parse_qs(urlsplit(action).query)["state"][0]


async def test_setup_posts_the_manifest_with_this_deployments_urls(
    bot_client: TestClient, fake_github: FakeGitHub
) -> None:
    action, manifest = await start(bot_client)
    assert action.startswith(f"{fake_github.url}/settings/apps/new?state=")
    assert len(state_of(action)) >= 40
    expected = load_manifest()
    assert manifest["default_events"] == expected["default_events"]
    assert manifest["default_permissions"] == expected["default_permissions"]
    assert manifest["hook_attributes"] == {"url": f"{PUBLIC_URL}/webhook", "active": True}
    assert manifest["redirect_url"] == f"{PUBLIC_URL}/setup/callback"
    assert manifest["url"] == PUBLIC_URL
    second, _ = await start(bot_client)
    assert state_of(second) != state_of(action)


async def test_registration_end_to_end(
    bot_client: TestClient,
    fake_github: FakeGitHub,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("BOT_PORT=9000\nBOT_WEBHOOK_SECRET=generated-locally\n")
    action, _ = await start(bot_client)
    # GitHub creates the App and sends the browser back with a code and the state.
    with caplog.at_level(logging.DEBUG):
        response = await bot_client.get(
            "/setup/callback", params={"code": "abc123", "state": state_of(action)}
        )
        page = await response.text()
    assert response.status == 200, page
    assert "Agent Dispatch (test)" in page and "https://github.com/apps/agent-dispatch-test" in page
    assert "Restart" in page or "restart" in page

    [conversion] = fake_github.requests_to("POST", "/conversions")
    assert conversion.api_path == "/app-manifests/abc123/conversions" and conversion.auth is None

    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    key_file = tmp_path / PRIVATE_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text() == fake_github.private_key_pem
    lines = env_file.read_text().splitlines()
    assert lines[0] == "BOT_PORT=9000"
    assert not any(line == "BOT_WEBHOOK_SECRET=generated-locally" for line in lines)
    assert any(line.startswith("BOT_CLIENT_ID=Iv1.fake") for line in lines)
    assert any(line.startswith("BOT_CLIENT_SECRET=") for line in lines)

    # The service started from that file is no longer in dry-run, and its credentials work.
    registered = Settings(_env_file=env_file, db=tmp_path / "bot.sqlite3")
    assert not registered.dry_run
    assert registered.app_id == fake_github.app_id
    assert registered.private_key_path == key_file
    assert registered.require_webhook_secret() == fake_github.webhook_secret
    assert registered.port == 9000
    async with aiohttp.ClientSession() as session:
        factory = GitHubFactory(
            registered.model_copy(update={"github_api_url": fake_github.url}),
            session,
            Metrics(),
            policy=FAST_RETRIES,
        )
        await factory.for_installation(1)
    assert [r.status for r in fake_github.token_requests] == [201]

    # No secret reached the page or a log line.
    conversion_secrets = [
        line.partition("=")[2]
        for line in lines
        if line.startswith(("BOT_CLIENT_SECRET=", "BOT_WEBHOOK_SECRET="))
    ]
    shown = page + "\n".join(r.getMessage() for r in caplog.records)
    for secret in [*conversion_secrets, "PRIVATE KEY"]:
        assert secret not in shown
    assert "BOT_CLIENT_ID" not in page

    # The flow is closed now: /setup says what to do next instead of offering a form.
    again = await bot_client.get(setup_path(bot_client))
    assert again.status == 200 and "<form" not in await again.text()


async def test_setup_needs_the_token_printed_in_the_log(
    aiohttp_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        client: TestClient = await aiohttp_client(await create_app(settings))
    token = client.app[REGISTRATION].token
    [line] = [r.getMessage() for r in caplog.records if "/setup?token=" in r.getMessage()]
    assert f"{PUBLIC_URL}/setup?token={token}" in line and len(token) >= 32
    for query in ("", "?token=", "?token=wrong", f"?token={token[:-1]}", "?token=%FF"):
        response = await client.get("/setup" + query)
        assert response.status == 403 and "<form" not in await response.text()
    organization_form = Forms(await (await client.get(setup_path(client))).text()).forms[1]
    assert organization_form["inputs"]["token"] == token


async def test_the_state_is_single_use_and_must_be_one_we_issued(
    bot_client: TestClient, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    action, _ = await start(bot_client)
    for params in ({"code": "c1", "state": "forged"}, {"code": "c1"}, {"state": state_of(action)}):
        response = await bot_client.get("/setup/callback", params=params)
        assert response.status == 400
    # A state is spent by its first use, even by a request without a code.
    response = await bot_client.get(
        "/setup/callback", params={"code": "c1", "state": state_of(action)}
    )
    assert response.status == 400
    assert fake_github.requests_to("POST", "/conversions") == []
    assert not (tmp_path / ".env").exists()


async def test_a_refused_code_writes_nothing_and_the_state_cannot_be_replayed(
    bot_client: TestClient, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_github.state.used_manifest_codes.add("spent")
    action, _ = await start(bot_client)
    response = await bot_client.get(
        "/setup/callback", params={"code": "spent", "state": state_of(action)}
    )
    assert response.status == 502
    assert "HTTP 404" in await response.text()
    assert not (tmp_path / ".env").exists() and not (tmp_path / PRIVATE_KEY_FILE).exists()
    replay = await bot_client.get(
        "/setup/callback", params={"code": "fresh", "state": state_of(action)}
    )
    assert replay.status == 400
    # Starting again works.
    action, _ = await start(bot_client)
    response = await bot_client.get(
        "/setup/callback", params={"code": "fresh", "state": state_of(action)}
    )
    assert response.status == 200


async def test_organization_and_smee_variants(
    bot_client: TestClient, fake_github: FakeGitHub
) -> None:
    action, manifest = await start(bot_client, "?org=octo-org&webhook_url=https://smee.io/AbC123")
    assert action.startswith(f"{fake_github.url}/organizations/octo-org/settings/apps/new?state=")
    assert manifest["hook_attributes"]["url"] == "https://smee.io/AbC123"
    assert manifest["redirect_url"] == f"{PUBLIC_URL}/setup/callback"
    for query in ("?org=../evil", "?org=a%2Fb", "?webhook_url=javascript:alert(1)"):
        response = await bot_client.get(setup_path(bot_client, query))
        assert response.status == 400


async def test_enterprise_server_posts_to_the_web_host_and_converts_under_api_v3(
    aiohttp_client: Any, fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    client: TestClient = await aiohttp_client(
        await create_app(make_settings(tmp_path, github_api_url=fake_github.ghes_url))
    )
    action, manifest = await start(client)
    assert action.startswith(f"{fake_github.url}/settings/apps/new?state=")
    assert (
        manifest["hook_attributes"]["url"] == "http://127.0.0.1:8000/webhook"
    )  # the default BOT_PUBLIC_URL
    response = await client.get(
        "/setup/callback", params={"code": "ghes-code", "state": state_of(action)}
    )
    assert response.status == 200
    [conversion] = fake_github.requests_to("POST", "/conversions")
    assert conversion.path == "/api/v3/app-manifests/ghes-code/conversions"


async def test_no_setup_routes_once_an_app_is_configured(
    aiohttp_client: Any, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    configured = make_settings(
        tmp_path,
        app_id=fake_github.app_id,
        private_key=fake_github.private_key_pem,
        github_api_url=fake_github.url,
    )
    client: TestClient = await aiohttp_client(await create_app(configured))
    for path in ("/setup", "/setup/callback?code=x&state=y"):
        assert (await client.get(path)).status == 404


@pytest.mark.parametrize(
    ("api_url", "org", "expected"),
    [
        ("https://api.github.com", None, "https://github.com/settings/apps/new?state=s"),
        (
            "https://api.github.com",
            "octo-org",
            "https://github.com/organizations/octo-org/settings/apps/new?state=s",
        ),
        (
            "https://ghe.example.com/api/v3",
            None,
            "https://ghe.example.com/settings/apps/new?state=s",
        ),
        (
            "https://ghe.example.com/api/v3",
            "eng",
            "https://ghe.example.com/organizations/eng/settings/apps/new?state=s",
        ),
    ],
)
def test_new_app_url(api_url: str, org: str | None, expected: str) -> None:
    assert new_app_url(api_url, "s", org) == expected


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ("", ["# h", "BOT_APP_ID=7", 'BOT_PRIVATE_KEY_PATH="/a b/key.pem"']),
        (
            "BOT_PORT=1\n\n",
            ["BOT_PORT=1", "", "# h", "BOT_APP_ID=7", 'BOT_PRIVATE_KEY_PATH="/a b/key.pem"'],
        ),
        (
            "# mine\nexport BOT_APP_ID=1\nBOT_PRIVATE_KEY=old\nBOT_WEBHOOK_SECRET=x\nBOT_DB=/d\n",
            [
                "# mine",
                "BOT_DB=/d",
                "",
                "# h",
                "BOT_APP_ID=7",
                'BOT_PRIVATE_KEY_PATH="/a b/key.pem"',
            ],
        ),
    ],
)
def test_updated_env_replaces_earlier_credentials(existing: str, expected: list[str]) -> None:
    text = updated_env(existing, {"BOT_APP_ID": "7", "BOT_PRIVATE_KEY_PATH": "/a b/key.pem"}, "h")
    assert text.splitlines() == expected


def test_env_values_with_quotes_round_trip(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(updated_env("", {"BOT_PRIVATE_KEY_PATH": '/odd "dir"\\ #x/key.pem'}, "h"))
    assert Settings(_env_file=env_file).private_key_path == Path('/odd "dir"\\ #x/key.pem')


def test_manifest_urls_come_from_the_public_url() -> None:
    manifest = build_manifest(
        {"name": "n", "url": "https://example.org"}, "https://bot.example.com/"
    )
    assert manifest["url"] == "https://example.org"
    assert manifest["hook_attributes"]["url"] == "https://bot.example.com/webhook"


def test_states_expire() -> None:
    now = [0.0]
    states = PendingStates(ttl=10.0, clock=lambda: now[0])
    old = states.issue()
    now[0] = 11.0
    fresh = states.issue()
    assert not states.take(old)
    assert states.take(fresh) and not states.take(fresh)


async def test_an_unwritable_env_folder_stops_before_the_code_is_spent(
    bot_client: TestClient, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    bot_client.app[REGISTRATION].env_file = tmp_path / "gone" / ".env"  # no such folder
    action, _ = await start(bot_client)
    response = await bot_client.get(
        "/setup/callback", params={"code": "c", "state": state_of(action)}
    )
    assert response.status == 500
    assert fake_github.requests_to("POST", "/conversions") == []
