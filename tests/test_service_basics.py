"""Settings, secrets, logging context and the operator commands."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config.settings import MissingWebhookSecret, Settings, ensure_local_webhook_secret
from bot.observability.logs import ContextFilter, Redactor, bind, scrub_sentry_event
from bot.service import create_app
from bot.store.actions import ActionLog
from bot.store.inbox import InboxQueries
from tests.service_fixtures import WEBHOOK_SECRET, send, settled


async def test_service_refuses_to_start_without_a_webhook_secret(tmp_path: Path) -> None:
    with pytest.raises(MissingWebhookSecret, match="BOT_WEBHOOK_SECRET"):
        await create_app(Settings(db=tmp_path / "x.sqlite3", _env_file=None))  # type: ignore[call-arg]


def test_serve_with_app_credentials_but_no_secret_exits_with_instructions(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(
        {
            "BOT_APP_ID": "1",
            "BOT_PRIVATE_KEY": "not-a-real-key-but-present",
            "BOT_DB": str(tmp_path / "db.sqlite3"),
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "BOT_WEBHOOK_SECRET" in result.stderr
    assert "not-a-real-key" not in result.stderr + result.stdout
    assert not (tmp_path / ".env").exists()


def test_first_local_run_generates_a_private_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BOT_WEBHOOK_SECRET", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("BOT_PORT=9000")
    assert ensure_local_webhook_secret(env_file) == env_file
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    lines = env_file.read_text().splitlines()
    assert (
        lines[0] == "BOT_PORT=9000"
        and lines[1].startswith("BOT_WEBHOOK_SECRET=")
        and len(lines[1]) > 40
    )
    assert ensure_local_webhook_secret(env_file) is None  # never replaced once there
    assert Settings(_env_file=env_file).webhook_secret is not None  # type: ignore[call-arg]


def test_graphql_url_is_derived_for_github_and_enterprise_server() -> None:
    assert Settings(_env_file=None).github_graphql_url == "https://api.github.com/graphql"  # type: ignore[call-arg]
    ghes = Settings(github_api_url="https://ghe.example.com/api/v3/", _env_file=None)  # type: ignore[call-arg]
    assert ghes.github_api_url == "https://ghe.example.com/api/v3"
    assert ghes.github_graphql_url == "https://ghe.example.com/api/graphql"


def test_secrets_are_hidden_in_settings_repr() -> None:
    s = Settings(
        webhook_secret="hunter2-hunter2", slack_token="xoxb-123456789012-abc", _env_file=None
    )  # type: ignore[call-arg]
    assert "hunter2" not in repr(s) and "xoxb" not in repr(s)
    assert s.dry_run


def test_every_log_record_carries_the_delivery_context_and_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redactor = Redactor([WEBHOOK_SECRET])
    logger = logging.getLogger("bot.test")
    caplog.handler.addFilter(ContextFilter(redactor))
    with caplog.at_level(logging.INFO):
        bind(
            logger, delivery="abc", event="issues.labeled", installation=5, repo="o/r", issue=3
        ).info("token ghs_%s and secret %s", "a" * 36, WEBHOOK_SECRET)
        logger.info("a record outside any delivery")
    first, second = caplog.records
    assert (first.delivery, first.event, first.installation, first.repo, first.issue) == (
        "abc",
        "issues.labeled",
        5,
        "o/r",
        3,
    )
    assert second.delivery == "-" and second.issue == "-"
    assert "ghs_" not in first.getMessage() and WEBHOOK_SECRET not in first.getMessage()


def test_sentry_events_lose_bodies_auth_headers_and_secrets() -> None:
    event = {
        "request": {
            "data": "{...payload...}",
            "headers": {
                "Authorization": "token x",
                "X-Hub-Signature-256": "sha256=1",
                "Accept": "*/*",
            },
        },
        "exception": {
            "values": [{"value": f"failed with secret {WEBHOOK_SECRET} and xoxb-1234567890-abcdef"}]
        },
    }
    clean = scrub_sentry_event(event, Redactor([WEBHOOK_SECRET]))
    assert "data" not in clean["request"]
    assert clean["request"]["headers"] == {"Accept": "*/*"}
    assert WEBHOOK_SECRET not in str(clean) and "xoxb-" not in str(clean)


async def test_deliveries_list_and_replay_commands(
    bot_client, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, delivery = await send(bot_client, "sponsorship", {"action": "created"})
    await settled(settings.db, [delivery])
    assert main(["--db", str(settings.db), "deliveries", "list", "--status", "ignored"]) == 0
    out = capsys.readouterr().out
    assert delivery in out and "sponsorship.created" in out
    assert main(["--db", str(settings.db), "deliveries", "replay", delivery]) == 0
    assert "queued again" in capsys.readouterr().out
    rows = await settled(settings.db, [delivery])
    assert rows[delivery]["completions"] == 2  # a replay is a deliberate second run
    assert main(["--db", str(settings.db), "deliveries", "replay", "no-such-id"]) == 1
    assert main(["--db", str(settings.db), "deliveries", "list", "--json"]) == 0
    assert '"status": "ignored"' in capsys.readouterr().out


def test_dry_run_actions_are_recorded_once_per_key_and_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "bot.sqlite3"
    actions = ActionLog(db)
    assert actions.record("github", "create_comment", "o/r#1", {"body": "hi"}, key="d1:0")
    assert not actions.record("github", "create_comment", "o/r#1", {"body": "hi"}, key="d1:0")
    actions.close()
    assert main(["--db", str(db), "actions", "list", "-v"]) == 0
    out = capsys.readouterr().out
    assert out.count("create_comment") == 1 and '"body": "hi"' in out
    assert InboxQueries(db).recent() == []
