"""User mistakes get one line on stderr that says what was wrong and what to do, a
non-zero exit and no traceback; a closed pipe ends the command quietly; `--help` loads
no third-party library (start-up time: bench/cli_startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import LAZY, build_parser, main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
TOOL = Path(sys.executable).parent / "agent-dispatch"


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    db = tmp_path / "ok.sqlite3"
    assert main(["--db", str(db), "issues", "import", str(FIXTURES / "peft-436.export.json")]) == 0
    return db


# (argv with {db} = a mirror holding huggingface/peft#436, {tmp} = an empty directory,
#  words the one line must contain)
MISTAKES = [
    (["--bogus"], ["unrecognized arguments: --bogus", "--help"]),
    ([], ["name a command", "issues"]),
    (["issues"], ["name a command", "list"]),
    (["--db", "{db}", "issues", "list", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["--db", "{db}", "issues", "show", "abc"], ["invalid int value", "--help"]),
    (["--db", "{tmp}/no/such/dir/x.sqlite3", "issues", "list"], ["does not exist", "create"]),
    (["--db", "{tmp}", "issues", "list"], ["is a directory", "file path"]),
    (["--db", "{tmp}/missing.sqlite3", "issues", "list"], ["no database", "issues import"]),
    (["--db", "{tmp}/missing.sqlite3", "triage", "--offline", "436"], ["no database"]),
    (["--db", "{tmp}/notadb.sqlite3", "issues", "list"], ["database", "--db"]),
    (["--db", "{tmp}/empty.sqlite3", "issues", "list"], ["holds no issues", "issues import"]),
    (["--db", "{db}", "issues", "show", "99999"], ["#99999 is not in the mirror"]),
    (["--db", "{db}", "issues", "import", "{tmp}/nope.json"], ["cannot import", "nope.json"]),
    (
        ["--db", "{db}", "triage", "--offline", "436", "--prompt-out", "{tmp}/no/dir/p.md"],
        ["{tmp}/no/dir/p.md", "check the path"],
    ),
    (
        ["--db", "{db}", "triage", "--offline", "436", "--prompt-out", "{tmp}"],
        ["{tmp}", "check the path"],
    ),
    (["--db", "{db}", "triage", "nonsense#x"], ["expected OWNER/NAME#N"]),
    (["--db", "{db}", "triage", "a/b#x"], ["expected OWNER/NAME#N"]),
    (["--db", "{db}", "sync", "nope"], ["OWNER/NAME", "nope"]),
    (["--db", "{db}", "deliveries", "list", "--status", "weird"], ["invalid choice"]),
]


@pytest.mark.parametrize(("argv", "words"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistake_gets_one_plain_line(
    argv: list[str],
    words: list[str],
    mirror: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "notadb.sqlite3").write_text("not a database, just text\n" * 100)
    (scratch / "empty.sqlite3").touch()
    fill = {"{db}": str(mirror), "{tmp}": str(scratch)}

    def filled(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    try:
        code = main([filled(word) for word in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code not in (0, None), err
    assert err.startswith("agent-dispatch") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert filled(word) in err, err


def test_invalid_settings_are_named_in_one_line(
    mirror: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOT_PORT", "eighty")
    assert main(["--db", str(mirror), "deliveries", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "BOT_PORT" in err and "Traceback" not in err


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {
                "repository": "octo/widgets",
                "issue": {
                    "number": n,
                    "title": f"widget {n} breaks " + "badly " * 20,
                    "state": "open",
                    "body": "x",
                    "user": {"login": "someone"},
                    "labels": [],
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-02T00:00:00Z",
                },
            }
        )
        for n in range(1, 1500)
    ]
    (tmp_path / "issues.jsonl").write_text("\n".join(lines) + "\n")
    db = tmp_path / "big.sqlite3"
    assert main(["--db", str(db), "issues", "import", str(tmp_path / "issues.jsonl")]) == 0
    reader = subprocess.run(
        f"{TOOL} --db {db} issues list --limit 1500 -v | head -c 10",
        shell=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("BOT_")},
        timeout=60,
    )
    assert len(reader.stdout) == 10 and reader.stderr == b"", reader.stderr


def test_help_lists_every_command_without_loading_any_library() -> None:
    code = (
        "import sys\n"
        "from bot.cli.main import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = {'pydantic', 'aiohttp', 'jinja2', 'yaml', 'slack_sdk', 'sentry_sdk', 'bot.models'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_lazy_help_lines_are_the_modules_own() -> None:
    """`--help` shows LAZY's lines without importing; they must match what each module
    registers (and each module must register the commands LAZY says it does)."""
    listed = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    for name, (_, help_text) in LAZY.items():
        full = build_parser(name)._subparsers._group_actions[0]  # type: ignore[union-attr]
        real = next(a.help for a in full._choices_actions if a.dest == name)
        assert real == help_text, f"LAZY[{name!r}] says {help_text!r}, the module {real!r}"
        assert name in listed.choices
