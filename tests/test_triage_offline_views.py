"""`triage --offline N --comment` and `triage --offline --all` (issue 18, item 5)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config.settings import Settings
from bot.store.mirror import MirrorStore
from bot.triage.comment import VERDICT_WORDS
from bot.triage.render import COMMENT_MARKER
from bot.web.links import LinkSigner
from tests.shared_data import data_file


def _mirror(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    db = str(tmp_path / "m.sqlite3")
    assert main(["--db", db, "issues", "import", str(data_file("peft.export.json"))]) == 0
    capsys.readouterr()
    return db


def test_the_comment_is_printed_as_it_would_be_posted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = _mirror(tmp_path, capsys)
    assert main(["--db", db, "triage", "--offline", "436", "--comment"]) == 0
    body = capsys.readouterr().out
    first, visible = body.split("\n", 1)
    marker = COMMENT_MARKER.match(first)
    assert marker is not None
    # The marker carries the hash of the visible text, exactly as the job writes it.
    assert marker.group(1) == hashlib.sha256(visible.strip().encode()).hexdigest()[:16]
    assert VERDICT_WORDS["actionable"] in visible
    # The link is to the prompt version the job would store, signed with the service's key.
    link = re.search(r"http://[^\s)]+/artifacts/huggingface/peft/436/1\.md\?[^\s)]+", visible)
    assert link is not None
    query = dict(part.split("=") for part in link.group(0).split("?", 1)[1].split("&"))
    signer = LinkSigner.from_settings(Settings(db=Path(db)))  # type: ignore[call-arg]
    path = "/artifacts/huggingface/peft/436/1.md"
    assert signer.valid(path, query["expires"], query["sig"])
    # Nothing was stored: the comment is a preview.
    assert main(["--db", db, "artifacts", "list"]) == 0
    assert "no artifacts" in capsys.readouterr().out

    assert main(["--db", db, "triage", "--offline", "436", "--comment", "--json"]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["verdict"] == "actionable"
    # The same comment, but for the link's signature and expiry (made at this moment).
    unsigned = re.compile(r"expires=\d+&sig=[0-9a-f]+")
    assert unsigned.sub("", decision["comment"].split("\n", 1)[1]) == unsigned.sub("", visible)


def test_all_lists_every_mirrored_issue_with_its_verdict_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _mirror(tmp_path, capsys)
    issues = MirrorStore(Path(db)).list_issues("huggingface/peft", limit=None)
    assert main(["--db", db, "triage", "--offline", "--all", "--json"]) == 0
    out = capsys.readouterr()
    assert out.err == ""  # no progress line when stderr is not a terminal
    rows = json.loads(out.out)
    assert [r["number"] for r in rows] == sorted(i.number for i in issues)
    assert set(rows[0]) == {"repo", "number", "verdict", "mode", "score", "reason"}
    by_number = {r["number"]: r for r in rows}
    assert by_number[436]["verdict"] == "actionable" and by_number[436]["reason"]
    assert all(r["verdict"] in VERDICT_WORDS for r in rows)

    assert main(["--db", db, "triage", "--offline", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(rows) + 1
    assert lines[-1].startswith(f"{len(rows)} of {len(rows)} issues of huggingface/peft: ")
    assert re.match(
        r"#436 +actionable +\S+ +\d\.\d\d  \S", next(ln for ln in lines if "#436 " in ln)
    )

    verdict = by_number[436]["verdict"]
    assert main(["--db", db, "triage", "--offline", "--all", "--verdict", verdict, "--json"]) == 0
    only = json.loads(capsys.readouterr().out)
    assert only == [r for r in rows if r["verdict"] == verdict]


MISTAKES = [
    (["triage", "--all"], "--offline"),
    (["triage", "o/r#1", "--comment"], "--offline"),
    (["triage", "--offline", "5", "--all"], "drop '5'"),
    (["triage", "--offline", "5", "--verdict", "question"], "--all"),
    (["triage", "--offline"], "name an issue"),
    (["triage", "--offline", "--all", "--comment"], "one issue number"),
]


def test_offline_view_mistakes_say_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _mirror(tmp_path, capsys)
    for argv, says in MISTAKES:
        assert main(["--db", db, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and err.count("\n") == 1, (argv, err)
