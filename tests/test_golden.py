"""Golden files: the rendered triage comment and prompt for three real issues.

Regenerate after an intended change with `UPDATE_GOLDEN=1 ./dev test tests/test_golden.py`
and review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config.repo import RepoConfig
from bot.mirror.importer import import_file
from bot.mirror.view import MirrorStoreView
from bot.store.artifacts import ArtifactRef
from bot.store.mirror import MirrorStore
from bot.triage.comment import comment_context
from bot.triage.pipeline import assess
from bot.triage.render import Renderer
from tests.shared_data import DATA, needs_data

pytestmark = needs_data
GOLDEN = Path(__file__).parent / "golden"
CASES = [
    # (name, export file, repo, number, expected verdict, expected mode)
    ("actionable-bug", "peft.export.json", "huggingface/peft", 436, "actionable", "fix"),
    ("hardware-blocked", "peft.export.json", "huggingface/peft", 2041, "needs-hardware", None),
    # vllm#5506: its only PR was cross-referenced with no state: "state unknown", mode unchanged
    ("pr-state-unknown", "vllm.xref.export.json", "vllm-project/vllm", 5506, None, "fix"),
]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorStore:
    store = MirrorStore(tmp_path_factory.mktemp("golden") / "mirror.sqlite3")
    for name in ("peft.export.json", "vllm.xref.export.json"):
        import_file(store, DATA / name)
    return store


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"{name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"
    )


@pytest.mark.parametrize(("name", "export", "repo", "number", "verdict", "mode"), CASES)
def test_rendered_comment_and_prompt_match_golden_files(
    mirror: MirrorStore,
    name: str,
    export: str,
    repo: str,
    number: int,
    verdict: str | None,
    mode: str | None,
) -> None:
    issue = mirror.get_issue(repo, number)
    assert issue is not None
    config = RepoConfig()
    assessment = assess(issue, MirrorStoreView(mirror), config, bot_login=None)
    decision = assessment.decision
    if verdict:
        assert decision.verdict == verdict
    if mode:
        assert decision.mode == mode
    renderer = Renderer()
    prompt = renderer.prompt(assessment.prompt)
    artifact = ArtifactRef(
        repo=repo,
        number=number,
        version=3,
        sha256="0" * 64,
        size=len(prompt.text),
        created_at=1_800_000_000.0,
    )
    comment = renderer.comment(
        comment_context(
            decision,
            config,
            errors=[],
            artifact=artifact,
            artifact_url=f"https://bot.example.org{artifact.path}?expires=1800604800&sig=abc",
            expires=1_800_604_800,
            followups=[],
        )
    )
    check_golden(f"{name}.comment.md", comment)
    check_golden(f"{name}.prompt.md", prompt.text)
