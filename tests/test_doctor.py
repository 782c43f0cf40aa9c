"""`agent-dispatch doctor` against the fake GitHub, the fake Slack and the real service."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.cli.doctor import compare_manifest, run_checks
from bot.cli.main import main
from bot.packaged import app_manifest
from bot.web.setup import load_manifest
from tests.fakegithub import FakeGitHub
from tests.fakeslack import TOKEN, FakeSlack


def lines(checks: list) -> dict[str, str]:
    return {check.name: check.status for check in checks}


async def test_a_working_set_up_passes_every_check(
    app_client: TestClient, services_db: Path, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    settings = fake_github.settings(
        db=services_db,
        slack_token=TOKEN,
        slack_api_url=fake_slack.api_url,
        slack_channel="#agents",
        public_url=str(app_client.make_url("")),
    )
    checks = await run_checks(settings)
    assert lines(checks) == {
        "webhook secret": "ok",
        "database": "ok",
        "App credentials": "ok",
        "installations": "ok",
        "app.yml matches the App": "ok",
        "Slack": "ok",
        "public URL": "ok",
    }, [c.line() for c in checks]


async def test_each_failure_says_how_to_fix_it(
    tmp_path: Path, fake_github: FakeGitHub, fake_slack: FakeSlack
) -> None:
    settings = fake_github.settings(
        db=tmp_path / "missing" / "bot.sqlite3",
        private_key=fake_github.private_key_pem.replace("A", "B", 1),
        slack_token="xoxb-wrong",
        slack_api_url=fake_slack.api_url,
        public_url="http://127.0.0.1:9",
    )
    checks = await run_checks(settings)
    failed = [c for c in checks if c.status == "FAIL"]
    assert {c.name for c in failed} >= {"database", "App credentials", "Slack", "public URL"}
    assert all(c.fix for c in failed)
    assert "invalid_auth" in next(c.detail for c in failed if c.name == "Slack")


@pytest.mark.parametrize(
    ("permissions", "events", "passes"),
    [
        ({"issues": "write", "pull_requests": "read", "metadata": "read"}, None, True),
        ({"issues": "admin", "pull_requests": "write", "metadata": "read"}, None, True),
        ({"issues": "read", "pull_requests": "read", "metadata": "read"}, None, False),
        ({"issues": "write", "metadata": "read"}, None, False),
        ({"issues": "write", "pull_requests": "read", "metadata": "read"}, [], False),
    ],
)
def test_app_yml_is_compared_with_the_registered_app(
    permissions: dict[str, str], events: list[str] | None, passes: bool
) -> None:
    manifest = load_manifest(app_manifest())
    app = {
        "permissions": {
            **permissions,
            **{
                k: "write"
                for k in manifest["default_permissions"]
                if k not in ("issues", "pull_requests", "metadata")
            },
        },
        "events": manifest["default_events"] if events is None else events,
    }
    if not {"issues", "pull_requests"} <= set(permissions):
        app["permissions"].pop("pull_requests", None)
    check = compare_manifest(manifest, app)
    assert (check.status == "ok") is passes, check.line()


def test_doctor_exits_non_zero_with_a_line_per_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("BOT_APP_ID", "BOT_PRIVATE_KEY", "BOT_PRIVATE_KEY_PATH", "BOT_SLACK_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOT_WEBHOOK_SECRET", "s" * 32)
    monkeypatch.setenv("BOT_PUBLIC_URL", "http://127.0.0.1:9")
    assert main(["--db", str(tmp_path / "bot.sqlite3"), "doctor"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("ok    webhook secret: set")
    assert "FAIL  App credentials" in out and "fix: register the App" in out
    assert "skip  Slack" in out and out.rstrip().endswith("checks passed")
