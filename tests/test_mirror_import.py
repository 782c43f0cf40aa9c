"""`issues import`: both formats, odd input, idempotent re-import, on the real data too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.mirror.formats import ImportFormatError
from bot.mirror.importer import import_file
from bot.store.mirror import MirrorStore
from tests.shared_data import DATA, needs_data

REPO = "octo/widgets"


def rest_line(number: int, **issue: object) -> dict[str, object]:
    base = {
        "number": number,
        "title": f"Issue {number}",
        "body": "body",
        "state": "open",
        "user": {"login": "alice", "type": "User"},
        "labels": [{"name": "bug"}],
        "comments": 1,
        "created_at": f"2024-01-0{number % 9 + 1}T00:00:00Z",
        "updated_at": f"2024-02-0{number % 9 + 1}T00:00:00Z",
        "reactions": {"+1": 2, "heart": 1, "total_count": 3, "url": "x"},
        "html_url": f"https://github.com/{REPO}/issues/{number}",
    }
    base.update(issue)
    return {
        "repository": REPO,
        "issue": base,
        "comments": [
            {
                "id": number * 10,
                "user": {"login": "bob"},
                "body": "me too",
                "created_at": "2024-03-01T00:00:00Z",
            }
        ],
        "timeline": [
            {"event": "labeled", "label": {"name": "bug"}, "created_at": "2024-01-02T00:00:00Z"},
            {"event": "subscribed"},
            {
                "event": "cross-referenced",
                "source": {
                    "type": "issue",
                    "issue": {
                        "number": 900 + number,
                        "title": "Fix it",
                        "state": "closed",
                        "html_url": f"https://github.com/{REPO}/pull/{900 + number}",
                        "pull_request": {"merged_at": "2024-03-02T00:00:00Z"},
                        "repository": {"full_name": REPO},
                    },
                },
            },
        ],
    }


@pytest.fixture
def store(tmp_path: Path) -> MirrorStore:
    return MirrorStore(tmp_path / "bot.sqlite3")


@needs_data
def test_coordinator_export_of_real_data_imports_every_issue(store: MirrorStore) -> None:
    total = 0
    for name in ("peft", "transformers", "vllm"):
        total += import_file(store, DATA / f"{name}.xref.export.json")
    assert total == 36
    assert store.repos() == ["huggingface/peft", "huggingface/transformers", "vllm-project/vllm"]
    issue = store.get_issue("huggingface/peft", 1939)
    assert issue is not None and issue.comments and issue.timeline[0].source_number == 1944


def test_rest_json_lines_with_comments_reactions_and_timeline(
    store: MirrorStore, tmp_path: Path
) -> None:
    path = tmp_path / "issues.jsonl"
    path.write_text("\n".join(json.dumps(rest_line(n)) for n in (1, 2, 3)) + "\n\n")
    assert import_file(store, path) == 3
    issue = store.get_issue(REPO, 2)
    assert issue is not None
    assert issue.author == "alice" and issue.labels == ["bug"]
    assert issue.reactions == {"THUMBS_UP": 2, "HEART": 1}
    assert [c.body for c in issue.comments] == ["me too"]
    assert [e.type for e in issue.timeline] == ["LabeledEvent", "CrossReferencedEvent"]
    assert (
        issue.timeline[1].source_state == "MERGED"
        and issue.timeline[1].source_type == "PullRequest"
    )


def test_reimport_is_idempotent(store: MirrorStore, tmp_path: Path) -> None:
    path = tmp_path / "issues.jsonl"
    path.write_text("\n".join(json.dumps(rest_line(n)) for n in (1, 2)))
    import_file(store, path)
    first = [i.model_dump() for i in store.list_issues(REPO)]
    import_file(store, path)
    import_file(store, path)
    assert [i.model_dump() for i in store.list_issues(REPO)] == first
    counts = store.conn.execute(
        "SELECT (SELECT COUNT(*) FROM mirror_comments), (SELECT COUNT(*) FROM mirror_timeline),"
        " (SELECT COUNT(*) FROM mirror_fts), (SELECT COUNT(*) FROM mirror_labels)"
    ).fetchone()
    assert tuple(counts) == (2, 4, 2, 2)


def test_odd_input_missing_body_null_author_unicode_huge_comment(
    store: MirrorStore, tmp_path: Path
) -> None:
    huge = "Traceback ... KeyError: 'x'\n" + "log line 🚀\n" * 200_000
    export = {
        "repository": REPO,
        "fetched_at": "2024-01-01T00:00:00Z",
        "open_issues": [
            {
                "number": 1,
                "title": 'Ünïcödé 中文 "quotes" OR NEAR( * title',
                "state": "OPEN",
                "author": None,
            },
            {
                "number": 2,
                "title": None,
                "body": None,
                "labels": None,
                "comments": [{"author": None, "body": huge}],
            },
            "not an issue",
        ],
        "closed_issues": [
            {
                "number": 3,
                "title": "done",
                "state": "CLOSED",
                "timeline": [{"type": 7}, {"no": "type"}],
            }
        ],
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export, ensure_ascii=False), encoding="utf-8")
    assert import_file(store, path) == 3
    one = store.get_issue(REPO, 1)
    two = store.get_issue(REPO, 2)
    assert one is not None and one.author is None and one.body == "" and "中文" in one.title
    assert two is not None and len(two.comments[0].body) == len(huge)
    assert store.get_issue(REPO, 3).state == "closed"  # type: ignore[union-attr]
    rest = rest_line(4, user=None, body=None, title="naïve — ✓")
    rest["comments"] = [{"id": 1, "user": None, "body": None}]
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps(rest, ensure_ascii=False), encoding="utf-8")
    assert import_file(store, path) == 1
    four = store.get_issue(REPO, 4)
    assert (
        four is not None
        and four.author is None
        and four.body == ""
        and four.comments[0].author is None
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2]", "not a coordinator export"),
        ("{not json", "neither"),
        ('{"issue": {"title": "no number"}, "repository": "a/b"}', "line 1"),
        ('{"issue": {"number": 1}}', "without a repository"),
    ],
)
def test_bad_files_say_what_is_wrong(
    store: MirrorStore, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ImportFormatError, match=message):
        import_file(store, path)
