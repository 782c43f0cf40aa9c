"""The triage comment a maintainer reads in ten seconds: one golden file per verdict.

Regenerate after an intended change with `UPDATE_GOLDEN=1 .venv/bin/pytest
tests/test_comment_golden.py` and review the diff like code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bot.config.repo import RepoConfig
from bot.github.trees import RepoTree
from bot.models import Comment, ExistingPR, Issue, RelatedIssue, TriageDecision, Verdict
from bot.store.artifacts import ArtifactRef
from bot.triage.comment import MAX_REASONS, comment_context
from bot.triage.engine import decide
from bot.triage.render import Renderer

GOLDEN = Path(__file__).parent / "golden"
REPO = "acme/vision"
CONFIG = RepoConfig()
TREE = RepoTree.from_paths(
    REPO,
    "tree1",
    ["visionlib/__init__.py", "visionlib/ops/boxes.py", "tests/test_boxes.py"],
)
BUG = """`batched_nms` drops the boxes of the last class.

```python
import torch, visionlib
keep = visionlib.ops.batched_nms(boxes, scores, idxs, 0.5)
```

```
Traceback (most recent call last):
  File "/home/u/repro.py", line 4, in <module>
  File "/usr/lib/python3.11/site-packages/visionlib/ops/boxes.py", line 75, in batched_nms
IndexError: index 3 is out of bounds for dimension 0 with size 3
```
visionlib 0.18.0, torch 2.3.0
"""
RELATED = [
    RelatedIssue(
        number=50,
        state="closed",
        title="batched_nms IndexError with empty classes",
        score=9.1,
        reason="shares the error line: IndexError: index # is out of bounds for dimension #",
    ),
    RelatedIssue(
        number=61,
        state="open",
        title="nms slow on CPU",
        score=3.2,
        reason="touches the same file: ops/boxes.py",
    ),
]


def subject(
    number: int = 120,
    *,
    title: str = "batched_nms IndexError",
    body: str = BUG,
    labels: list[str] | None = None,
    comments: list[tuple[str, str]] = (),
) -> Issue:
    return Issue(
        repo=REPO,
        number=number,
        title=title,
        body=body,
        author="reporter",
        labels=labels or [],
        comments=[
            Comment(author=who, author_association="MEMBER", body=text) for who, text in comments
        ],
    )


def cases() -> dict[Verdict, TriageDecision]:
    open_pr = ExistingPR(
        number=130,
        state="open",
        found_by="closing-keyword",
        closes=True,
        title="Fix batched_nms for the last class",
    )
    unknown_pr = ExistingPR(number=131, state="unknown", found_by="timeline")
    merged = ExistingPR(
        number=140,
        state="merged",
        found_by="closing-keyword",
        closes=True,
        title="Handle empty classes in batched_nms",
    )
    return {
        "actionable": decide(
            subject(), CONFIG.triage, existing_prs=[open_pr, unknown_pr], related=RELATED, tree=TREE
        ),
        "needs-info": decide(
            subject(title="It is broken", body="It does not work for me."), CONFIG.triage, tree=TREE
        ),
        "needs-hardware": decide(
            subject(title="batched_nms wrong on Apple MPS", body=BUG + "\nOnly on mps, an M2 Max."),
            CONFIG.triage,
            tree=TREE,
        ),
        "needs-decision": decide(
            subject(
                title="[RFC] A new rotated-box API",
                body="We need to decide on the box format first.",
            ),
            CONFIG.triage,
            tree=TREE,
        ),
        "question": decide(
            subject(
                title="How to run batched_nms on int boxes?",
                body="Is there a way to keep integer boxes?",
            ),
            CONFIG.triage,
            tree=TREE,
        ),
        "duplicate": decide(
            subject(comments=[("maintainer", "Duplicate of #50.")]),
            CONFIG.triage,
            related=RELATED,
            known_issues=[50],
            tree=TREE,
        ),
        "close-candidate": decide(
            subject(), CONFIG.triage, existing_prs=[merged], related=RELATED, tree=TREE
        ),
    }


def render(decision: TriageDecision) -> str:
    artifact = ArtifactRef(
        repo=REPO,
        number=decision.number,
        version=2,
        sha256="0" * 64,
        created_at=1_800_000_000.0,
        size=1000,
    )
    context = comment_context(
        decision,
        CONFIG,
        errors=[],
        artifact=artifact,
        artifact_url=f"https://bot.example.org/artifacts/{REPO}/{decision.number}/2.md?sig=x",
        expires=1_800_604_800.0,
        followups=[],
    )
    return Renderer().comment(context)


@pytest.mark.parametrize("verdict", list(cases()))
def test_comment_golden_for_every_verdict(verdict: Verdict) -> None:
    decision = cases()[verdict]
    assert decision.verdict == verdict, decision.summary
    text = render(decision)
    path = GOLDEN / f"comment-{verdict}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("verdict", list(cases()))
def test_the_comment_reads_in_ten_seconds(verdict: Verdict) -> None:
    decision = cases()[verdict]
    text = render(decision)
    visible, _, details = text.partition("<details>")
    lines = visible.splitlines()
    header = lines[1]
    assert header.startswith("**agent-dispatch triage: ") and "mode:" in header
    assert "prompt v2" in header
    # The verdict is said once; signal ids, weights and the score stay in <details>.
    assert visible.count("agent-dispatch triage:") == 1
    assert "score" not in visible.lower() and "(+0." not in visible
    assert not any(f"`{s.name}`" in visible for s in decision.signals)
    assert "</details>" in details
    reasons = []
    for line in lines[3:]:
        if not line.startswith("- "):
            break
        reasons.append(line)
    assert 1 <= len(reasons) <= MAX_REASONS
    assert "**Next step:**" in visible and "**Pull requests:**" in visible


@pytest.mark.parametrize("verdict", ["duplicate", "close-candidate", "question", "needs-info"])
def test_no_invitation_to_dispatch_what_should_not_be(verdict: Verdict) -> None:
    visible = render(cases()[verdict]).partition("<details>")[0]
    assert f"`{CONFIG.labels.dispatch}`" not in visible
    assert not re.search(r"\bapply\b", visible, re.I)


def test_prs_are_shown_with_their_state_and_how_they_were_found() -> None:
    visible = render(cases()["actionable"])
    assert "- #130 (open, says it closes this issue)" in visible
    assert "- #131 (state unknown, mentions this issue)" in visible
    assert "review and finish #130" in visible
    assert "a traceback through `visionlib/ops/boxes.py`" in visible


def test_related_issues_each_carry_their_reason() -> None:
    visible = render(cases()["actionable"])
    assert "#50 (closed)" in visible and "shares the error line" in visible
    assert "#61 (open)" in visible and "touches the same file" in visible
