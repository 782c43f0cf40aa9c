"""`agent-dispatch outbox list|retry`, run in-process through argparse and `register`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bot.cli.outbox import register
from bot.notify.outbox import Outbox
from bot.notify.slack import text_reply_message


def cli(db: Path, *argv: str) -> int:
    # Until bot/cli/main.py registers these commands, build the same shape of parser.
    parser = argparse.ArgumentParser(prog="agent-dispatch")
    parser.add_argument("--db", type=Path)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["--db", str(db), *argv])
    return int(args.func(args))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "bot.sqlite3"
    box = Outbox(path)
    sent = box.enqueue(
        key="dispatch:1",
        kind="dispatch",
        message=text_reply_message("sent one"),
        channel="#d",
        repo="o/r",
        subjects=[1],
    )
    box.mark_sent(sent.id, channel="C1", ts="1.000001", thread_ts="1.000001")
    dead = box.enqueue(
        key="dispatch:2", kind="dispatch", message=text_reply_message("dead one"), channel="#d"
    )
    box.mark_dead(dead.id, "Slack error: invalid_auth (HTTP 200) (after 5 attempts)")
    box.enqueue_reply(
        key="reply:1", parent_key="dispatch:1", message=text_reply_message("waiting reply")
    )
    box.close()
    return path


def test_list_shows_status_errors_and_threads(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "outbox", "list") == 0
    out = capsys.readouterr().out
    assert "3  pending reply      reply:1  (default channel) thread of dispatch:1" in out
    assert "2  dead    dispatch   dispatch:2  #d  attempts=0" in out
    assert "error: Slack error: invalid_auth (HTTP 200) (after 5 attempts)" in out
    assert "1  sent    dispatch   dispatch:1  C1" in out and "sent one" in out


def test_list_json_and_status_filter(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "outbox", "list", "--status", "dead", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["key"], row["status"], row["text"]) == (
        2,
        "dispatch:2",
        "dead",
        "dead one",
    )
    assert cli(db, "outbox", "list", "--status", "failed") == 0
    assert capsys.readouterr().out == "no notifications with status failed\n"


def test_retry_requeues_dead_but_never_resends(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(db, "outbox", "retry", "2") == 0
    assert "queued again" in capsys.readouterr().out
    box = Outbox(db)
    row = box.get(2)
    assert row is not None and (row.status, row.attempts, row.last_error) == ("pending", 0, None)
    box.close()
    assert cli(db, "outbox", "retry", "1") == 1
    assert "already sent" in capsys.readouterr().out
    assert cli(db, "outbox", "retry", "99") == 1
    assert "no notification 99" in capsys.readouterr().out
