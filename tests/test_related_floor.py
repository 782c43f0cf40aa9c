"""Related issues with a floor (issue 12, part 5): a reason each, at most five, no noise.

Trigger labels (`agent-ready`, `dispatch`) and words on most issues never make two issues
related; a shared error line, file, identifiers or a link does, and says so.
"""

from __future__ import annotations

from pathlib import Path

from bot.config.triage import TriageRules
from bot.mirror.related import find_related
from bot.models import Issue, RelatedIssue
from bot.store.mirror import MirrorStore
from bot.triage.engine import decide

REPO = "octo/widgets"
COMMON = "The model crashes when I train it with the default settings on my machine."


def mirror(tmp_path: Path) -> MirrorStore:
    store = MirrorStore(tmp_path / "bot.sqlite3")
    filler = [
        Issue(
            repo=REPO,
            number=n,
            title=f"Widget option {n} is ignored",
            body=f"{COMMON} Option {n} does nothing.",
            labels=["agent-ready", "dispatch"],
        )
        for n in range(100, 130)
    ]
    store.upsert_many(
        [
            *filler,
            Issue(
                repo=REPO,
                number=7,
                state="closed",
                title="Loading fails after upgrade",
                body=f"{COMMON}\nKeyError: 'base_model.model.lm_head.weight' in load_adapter",
            ),
        ]
    )
    return store


def test_trigger_labels_and_common_words_never_relate_two_issues(tmp_path: Path) -> None:
    store = mirror(tmp_path)
    probe = Issue(
        repo=REPO,
        number=200,
        title="Something else entirely",
        body=COMMON,
        labels=["agent-ready", "dispatch"],
    )
    assert find_related(store, probe) == []


def test_a_shared_error_line_relates_and_says_so(tmp_path: Path) -> None:
    store = mirror(tmp_path)
    probe = Issue(
        repo=REPO,
        number=201,
        title="Adapter does not load",
        body="Since 0.12:\nKeyError: 'base_model.model.lm_head.weight' in load_adapter",
        labels=["agent-ready"],
    )
    found = find_related(store, probe)
    assert [r.number for r in found] == [7]
    assert found[0].reason.startswith("shares the error line")


def test_a_link_relates_and_says_so(tmp_path: Path) -> None:
    store = mirror(tmp_path)
    probe = Issue(repo=REPO, number=202, title="Follow-up", body="Same area as #7, see there.")
    found = find_related(store, probe)
    assert found and found[0].number == 7
    assert found[0].reason == "this issue links to #7"


def test_a_decision_carries_at_most_five_related_issues() -> None:
    many = [
        RelatedIssue(number=n, state="open", title=f"t{n}", score=10.0 - n / 100, reason="x")
        for n in range(1, 12)
    ]
    issue = Issue(repo=REPO, number=50, title="Crash", body=COMMON)
    assert len(decide(issue, TriageRules(), related=many).related) == 5
