"""`triage` (offline and live), `artifacts`, verdict labels and the directory artifact store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from bot.cli.main import main
from bot.store.artifacts import ArtifactStore
from bot.web.links import LinkSigner
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import REPO, labeled, real_issue, seed, send, settled
from tests.shared_data import data_file

CONTRACT_FIELDS = {
    "repo",
    "number",
    "verdict",
    "actionable",
    "score",
    "signals",
    "hardware",
    "existing_prs",
    "related",
    "priority",
    "mode",
}


def test_offline_triage_prints_the_contract_json_and_writes_the_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "m.sqlite3")
    assert main(["--db", db, "issues", "import", str(data_file("peft.export.json"))]) == 0
    capsys.readouterr()
    prompt = tmp_path / "issue-436.md"
    assert (
        main(["--db", db, "triage", "--offline", "436", "--json", "--prompt-out", str(prompt)]) == 0
    )
    decision = json.loads(capsys.readouterr().out)
    assert set(decision) >= CONTRACT_FIELDS
    assert (decision["repo"], decision["number"], decision["verdict"], decision["actionable"]) == (
        "huggingface/peft",
        436,
        "actionable",
        True,
    )
    assert "## 1. Setup" in prompt.read_text() and "## 9. Launch command" in prompt.read_text()


def test_offline_triage_explains_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "m.sqlite3")
    assert main(["--db", db, "triage", "--offline", "1"]) == 2
    assert "no issues" in capsys.readouterr().err
    main(["--db", db, "issues", "import", str(data_file("peft.export.json"))])
    main(["--db", db, "issues", "import", str(data_file("vllm.export.json"))])
    assert main(["--db", db, "triage", "--offline", "436"]) == 2
    assert "--repo" in capsys.readouterr().err
    assert main(["--db", db, "triage", "--offline", "999999", "--repo", "huggingface/peft"]) == 2
    assert "not in the mirror" in capsys.readouterr().err


def test_live_dry_run_triage_reads_github_and_records_the_comment(
    fake_github: FakeGitHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    settings = fake_github.settings()
    monkeypatch.chdir(tmp_path)
    for key, value in {
        "BOT_WEBHOOK_SECRET": settings.webhook_secret.get_secret_value(),
        "BOT_APP_ID": str(settings.app_id),
        "BOT_PRIVATE_KEY": settings.private_key.get_secret_value(),
        "BOT_GITHUB_API_URL": settings.github_api_url,
    }.items():
        monkeypatch.setenv(key, value)
    db = str(tmp_path / "live.sqlite3")
    assert main(["--db", db, "triage", f"{REPO}#{number}", "--dry-run", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (
        result["verdict"] == "actionable"
        and result["recorded_not_sent"] is True
        and result["comment"] == "created"
    )
    assert fake_github.comments_of(REPO, number) == [
        c for c in fake_github.comments_of(REPO, number) if c["user"]["type"] != "Bot"
    ]
    assert main(["--db", db, "actions", "list"]) == 0
    assert "create_comment" in capsys.readouterr().out
    assert main(["--db", db, "artifacts", "list"]) == 0
    assert f"{REPO}#{number} v1" in capsys.readouterr().out
    assert main(["--db", db, "artifacts", "get", f"{REPO}#{number}"]) == 0
    assert capsys.readouterr().out.startswith("# Fix: huggingface/peft#436")
    assert main(["--db", db, "artifacts", "get", f"{REPO}#{number}", "--version", "9"]) == 2


async def test_verdict_labels_follow_the_verdict_when_enabled(
    app_client: TestClient, fake_github: FakeGitHub, services_db: Path
) -> None:
    fake_github.set_file(
        REPO, ".github/agent-dispatch.yml", "labels:\n  apply_verdict_labels: true\n"
    )
    number = seed(fake_github, real_issue("peft.export.json", 436))
    _, _, delivery = await send(
        app_client, "issues", labeled(number), secret=fake_github.webhook_secret
    )
    await settled(services_db, [delivery])
    assert "agent: actionable" in fake_github.labels_of(REPO, number)


def test_directory_store_keeps_versions_as_files_and_links_expire(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a.sqlite3", tmp_path / "artifacts")
    first = store.put("o/r", 5, "one")
    assert store.put("o/r", 5, "one") == first  # unchanged text: no new version
    second = store.put("o/r", 5, "two")
    assert (first.version, second.version) == (1, 2)
    assert (tmp_path / "artifacts" / "o" / "r" / "5" / "2.md").read_text() == "two"
    assert store.get("o/r", 5, 1) == "one" and store.get("o/r", 5, 3) is None
    signer = LinkSigner(b"k" * 32, "https://bot.example.org/")
    url = signer.url(second, expires=2_000)
    query = dict(part.split("=") for part in url.split("?", 1)[1].split("&"))
    assert signer.valid(second.path, query["expires"], query["sig"], now=1_999)
    assert not signer.valid(second.path, query["expires"], query["sig"], now=2_001)
    assert not signer.valid(first.path, query["expires"], query["sig"], now=1_999)
    assert not LinkSigner(b"o" * 32, "https://x").valid(
        second.path, query["expires"], query["sig"], now=1_999
    )
