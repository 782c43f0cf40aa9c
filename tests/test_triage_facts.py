"""Every factual statement of a triage has a checked source (issue 12, part 1).

Each test is one false statement an earlier version made, rebuilt from a real-shaped
payload: REST objects as GitHub sends them (issue, comments, timeline) or the real
issues of ../shared/data, triaged through the same `assess()` the job calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config.repo import RepoConfig
from bot.mirror.formats import rest_issue
from bot.mirror.importer import import_file
from bot.mirror.prs import find_existing_prs
from bot.mirror.view import MirrorStoreView
from bot.models import Issue
from bot.store.mirror import MirrorStore
from bot.triage.comment import pr_line
from bot.triage.engine import decide
from bot.triage.pipeline import assess
from tests.shared_data import DATA, needs_data

REPO = "huggingface/peft"
CONFIG = RepoConfig()
TRACEBACK = """\
### System Info
peft 0.11.1, torch 2.3.0, transformers 4.41.2

### Reproduction
```python
from peft import PeftModel
model = PeftModel.from_pretrained(base, "adapter")
```

```
Traceback (most recent call last):
  File "/usr/lib/python3.10/site-packages/peft/peft_model.py", line 557, in load_adapter
    load_result = set_peft_model_state_dict(self, adapters_weights)
  File "/usr/lib/python3.10/site-packages/peft/utils/save_and_load.py", line 249, in set_peft_model_state_dict
KeyError: 'base_model.model.lm_head.weight'
```

Loading the adapter fails with a KeyError since the last release.
"""


def user(login: str, kind: str = "User") -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10_000, "type": kind}


def rest_raw_issue(number: int, title: str, body: str = TRACEBACK, **extra: Any) -> dict[str, Any]:
    return {
        "number": number,
        "title": title,
        "body": body,
        "state": extra.pop("state", "open"),
        "user": user(extra.pop("author", "reporter")),
        "author_association": "NONE",
        "labels": [{"name": name} for name in extra.pop("labels", [])],
        "comments": 0,
        "created_at": f"2024-05-{min(28, number % 28 + 1):02d}T10:00:00Z",
        "updated_at": "2024-06-01T10:00:00Z",
        "html_url": f"https://github.com/{REPO}/issues/{number}",
        "reactions": {"+1": 0},
        **extra,
    }


def rest_comment(login: str, body: str, association: str = "MEMBER") -> dict[str, Any]:
    return {
        "id": abs(hash(body)) % 1_000_000,
        "user": user(login),
        "author_association": association,
        "body": body,
        "created_at": "2024-06-02T10:00:00Z",
        "updated_at": "2024-06-02T10:00:00Z",
        "html_url": f"https://github.com/{REPO}/issues/1#issuecomment-1",
    }


def cross_reference(number: int, *, state: str | None, merged: bool, body: str) -> dict[str, Any]:
    """A REST timeline `cross-referenced` event whose source is a pull request."""
    pull: dict[str, Any] = {"url": f"https://api.github.com/repos/{REPO}/pulls/{number}"}
    if merged:
        pull["merged_at"] = "2024-06-03T10:00:00Z"
    item: dict[str, Any] = {
        "number": number,
        "title": f"PR {number}",
        "body": body,
        "html_url": f"https://github.com/{REPO}/pull/{number}",
        "repository": {"full_name": REPO},
        "pull_request": pull,
    }
    if state is not None:
        item["state"] = state
    return {
        "event": "cross-referenced",
        "created_at": "2024-06-03T10:00:00Z",
        "actor": user("contributor"),
        "source": {"type": "issue", "issue": item},
    }


@pytest.fixture
def mirror(tmp_path: Path) -> MirrorStore:
    return MirrorStore(tmp_path / "mirror.sqlite3")


def triage(mirror: MirrorStore, issue: Issue) -> Any:
    mirror.upsert_issue(issue)
    return assess(issue, MirrorStoreView(mirror), CONFIG, bot_login=None).decision


def test_a_link_into_another_repository_is_never_called_a_duplicate(mirror: MirrorStore) -> None:
    mirror.upsert_issue(rest_issue(REPO, rest_raw_issue(12, "Unrelated old issue"), [], []))
    issue = rest_issue(
        REPO,
        rest_raw_issue(40, "KeyError when loading an adapter", labels=["Duplicate"]),
        [
            rest_comment("someone", "Looks like someone/other-repo#12, same trace there.", "NONE"),
            rest_comment("maintainer", "Duplicate of someone/other-repo#12"),
        ],
        [],
    )
    decision = triage(mirror, issue)
    assert decision.duplicate_of is None
    assert "#12" not in decision.summary
    assert not any("#12" in line for line in decision.missing)


def test_a_duplicate_must_be_an_existing_issue_of_this_repository(mirror: MirrorStore) -> None:
    said = [rest_comment("maintainer", "Duplicate of #12")]
    issue = rest_issue(REPO, rest_raw_issue(40, "KeyError when loading an adapter"), said, [])
    assert triage(mirror, issue).duplicate_of is None  # nobody has seen #12
    mirror.upsert_issue(rest_issue(REPO, rest_raw_issue(12, "Adapter load KeyError"), [], []))
    decision = triage(mirror, issue)
    assert (decision.verdict, decision.duplicate_of) == ("duplicate", 12)
    # A pull request #12 is not an issue to duplicate.
    pull = rest_raw_issue(12, "Fix adapter loading", pull_request={"url": "x"})
    mirror.upsert_issue(rest_issue(REPO, pull, [], []))
    assert triage(mirror, issue).duplicate_of is None


def test_two_issues_never_name_each_other_as_duplicates(mirror: MirrorStore) -> None:
    title = "[Bug]: KeyError when loading an adapter saved with modules_to_save"
    older = rest_issue(REPO, rest_raw_issue(100, title), [], [])
    newer = rest_issue(REPO, rest_raw_issue(120, title), [], [])
    mirror.upsert_many([older, newer])
    on_newer = triage(mirror, newer)
    on_older = triage(mirror, older)
    assert (on_newer.verdict, on_newer.duplicate_of) == ("duplicate", 100)
    assert on_older.duplicate_of is None and on_older.verdict != "duplicate"


def test_an_issue_reference_is_not_listed_as_a_pull_request(mirror: MirrorStore) -> None:
    tracked = rest_issue(REPO, rest_raw_issue(130, "Tracking: adapter loading"), [], [])
    mirror.upsert_issue(tracked)
    said = [rest_comment("maintainer", "This is tracked by #130, see the PR #130 plan there.")]
    issue = rest_issue(REPO, rest_raw_issue(140, "KeyError when loading an adapter"), said, [])
    mirror.upsert_issue(issue)
    assert find_existing_prs(mirror, issue) == []
    assert triage(mirror, issue).existing_prs == []
    # The same words about a number the mirror knows as a pull request do list it.
    pull = rest_raw_issue(150, "Fix adapter loading", pull_request={"url": "x"}, state="open")
    mirror.upsert_issue(rest_issue(REPO, pull, [], []))
    said = [rest_comment("maintainer", "I opened PR #150 for this.")]
    issue = rest_issue(REPO, rest_raw_issue(141, "KeyError when loading an adapter"), said, [])
    listed = triage(mirror, issue).existing_prs
    assert [(p.number, p.state, p.found_by) for p in listed] == [(150, "open", "comment")]


def test_a_pr_of_unknown_state_is_shown_so_and_leaves_the_mode(mirror: MirrorStore) -> None:
    event = cross_reference(160, state=None, merged=False, body="Related work")
    raw = rest_raw_issue(161, "KeyError when loading an adapter", state="closed")
    issue = rest_issue(REPO, raw, [], [event])
    decision = triage(mirror, issue)
    assert [(p.number, p.state) for p in decision.existing_prs] == [(160, "unknown")]
    assert decision.mode != "review-existing-pr"
    assert pr_line(decision.existing_prs[0]).startswith("#160 (state unknown")


def test_only_a_merged_pr_that_closes_this_issue_makes_a_close_candidate(
    mirror: MirrorStore,
) -> None:
    unrelated = cross_reference(170, state="closed", merged=True, body="fixes to recent PR #753")
    raw = rest_raw_issue(171, "KeyError when loading an adapter")
    decision = triage(mirror, rest_issue(REPO, raw, [], [unrelated]))
    assert decision.verdict != "close-candidate"
    assert [(p.number, p.state, p.closes) for p in decision.existing_prs] == [
        (170, "merged", False)
    ]
    closing = cross_reference(172, state="closed", merged=True, body="Fixes #171.")
    decision = triage(mirror, rest_issue(REPO, raw, [], [unrelated, closing]))
    assert decision.verdict == "close-candidate"
    assert any(p.number == 172 and p.closes for p in decision.existing_prs)
    # A keyword for another issue, or another repository's issue, is not this issue's.
    other = cross_reference(173, state="closed", merged=True, body="Fixes #17 and other/lib#171")
    assert triage(mirror, rest_issue(REPO, raw, [], [other])).verdict != "close-candidate"


@needs_data
def test_real_merged_pr_titled_fixes_to_recent_pr_does_not_close_peft_1095(
    mirror: MirrorStore,
) -> None:
    import_file(mirror, DATA / "peft.xref.export.json")
    issue = mirror.get_issue(REPO, 1095)
    assert issue is not None
    decision = assess(issue, MirrorStoreView(mirror), CONFIG, bot_login=None).decision
    merged = [p for p in decision.existing_prs if p.state == "merged"]
    assert [p.number for p in merged] == [864]  # "fixes to recent PR #753"
    assert decision.verdict != "close-candidate"


def test_out_of_scope_for_this_issue_about_a_side_topic_does_not_close_it() -> None:
    side = (
        "Thanks, I can reproduce the KeyError. Supporting DoRA for this layer type is out of "
        "scope for this issue, let's keep that for a separate one."
    )
    raw = rest_raw_issue(180, "KeyError when loading an adapter")
    issue = rest_issue(REPO, raw, [rest_comment("maintainer", side)], [])
    decision = decide(issue, CONFIG.triage)
    assert decision.verdict != "close-candidate"
    ruled_out = rest_issue(
        REPO, raw, [rest_comment("maintainer", "This request is out of scope for PEFT.")], []
    )
    assert decide(ruled_out, CONFIG.triage).verdict == "close-candidate"
