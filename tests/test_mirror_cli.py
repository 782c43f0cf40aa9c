"""The `issues` subcommands and `sync`, run in-process through argparse and `register`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli.issues import shared_groups
from bot.cli.main import main
from bot.models import Comment, Issue, TimelineEvent
from bot.store.mirror import MirrorStore
from tests.shared_data import data_file

REPO = "octo/widgets"


def cli(db: Path, *argv: str) -> int:
    return main(["--db", str(db), *argv])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "bot.sqlite3"
    store = MirrorStore(path)
    store.upsert_many(
        [
            Issue(
                repo=REPO,
                number=1,
                title="CUDA crash when loading model",
                body="RuntimeError: CUDA error: out of memory",
                labels=["bug"],
                reactions={"THUMBS_UP": 5},
                comment_count=1,
                comments=[Comment(author="bob", body="same on A100")],
            ),
            Issue(
                repo=REPO,
                number=2,
                title="Out of memory on load",
                body="RuntimeError: CUDA error: out of memory\nin load_model()",
                labels=["bug"],
                state="closed",
            ),
            Issue(
                repo=REPO,
                number=3,
                title="Docs typo",
                body="README says teh",
                comment_count=4,
                timeline=[
                    TimelineEvent(
                        type="CrossReferencedEvent",
                        source_type="PullRequest",
                        source_number=9,
                        source_state="OPEN",
                        source_title="Fix typo",
                    )
                ],
            ),
            Issue(repo="other/repo", number=3, title="Unrelated", body="hello"),
        ]
    )
    store.close()
    return path


def test_list_marks_open_prs_and_filters(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "issues", "list", "--repo", REPO, "--state", "open") == 0
    out = capsys.readouterr().out
    assert "*#3" in out and "PR #9" in out and "#1 " in out and "#2 " not in out
    assert cli(db, "issues", "list", "--repo", REPO, "--unlabeled", "--json") == 0
    assert [(i["number"], i["open_prs"]) for i in json.loads(capsys.readouterr().out)] == [(3, [9])]
    assert cli(db, "issues", "list", "--label", "bug", "--sort", "reactions", "--brief") == 0
    assert capsys.readouterr().out.splitlines() == [
        "#1 CUDA crash when loading model",
        "#2 Out of memory on load",
    ]


def test_show_prints_comments_timeline_and_prs(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(db, "issues", "show", "1", "--repo", REPO) == 0
    out = capsys.readouterr().out
    assert "CUDA crash" in out and "same on A100" in out and "existing PRs: none found" in out
    assert cli(db, "issues", "show", "3", "--repo", REPO, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert (
        data["timeline"][0]["source_number"] == 9
        and data["existing_prs"][0]["found_by"] == "timeline"
    )


def test_ambiguous_or_missing_number_is_a_usage_error(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(db, "issues", "show", "3") == 2
    assert "--repo" in capsys.readouterr().err
    assert cli(db, "issues", "related", "404") == 2
    assert "not in the mirror" in capsys.readouterr().err


def test_search_and_title_only(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "issues", "search", "out", "of", "memory", "--json") == 0
    assert {i["number"] for i in json.loads(capsys.readouterr().out)} == {1, 2}
    assert cli(db, "issues", "search", "memory", "--title-only", "--json") == 0
    assert [i["number"] for i in json.loads(capsys.readouterr().out)] == [2]
    assert (
        cli(db, "issues", "search", '"NEAR( OR *', "-v") == 0
    )  # query syntax in input is just text
    assert "no issues match" in capsys.readouterr().out


def test_related_and_batch_related(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "issues", "related", "1", "--repo", REPO, "--json") == 0
    related = json.loads(capsys.readouterr().out)
    assert related[0]["number"] == 2 and related[0]["score"] > 0 and related[0]["matched"]
    assert cli(db, "issues", "related", "1", "--repo", REPO, "--state", "open") == 0
    assert "no related issues found" in capsys.readouterr().out
    assert cli(db, "issues", "batch-related", "1", "2", "--repo", REPO) == 0
    out = capsys.readouterr().out
    assert "#1 CUDA crash" in out and "#2 Out of memory" in out and "matched:" in out
    assert cli(db, "issues", "batch-related", "1", "2", "--repo", REPO, "--json") == 0
    assert [b["related"][0]["number"] for b in json.loads(capsys.readouterr().out)] == [2, 1]


def test_top_and_stats(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "issues", "top", "--repo", REPO, "--json") == 0
    assert [i["number"] for i in json.loads(capsys.readouterr().out)] == [1, 3]
    assert cli(db, "issues", "stats", "--repo", REPO) == 0
    out = capsys.readouterr().out
    assert "issues: 2 open, 1 closed" in out and "bug (2)" in out
    assert cli(db, "issues", "stats", "--json") == 0
    assert json.loads(capsys.readouterr().out)["repos"] == ["octo/widgets", "other/repo"]


def test_import_command(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "issues", "import", str(data_file("peft.export.json"))) == 0
    assert "imported 10 issues" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("nope")
    assert cli(db, "issues", "import", str(bad)) == 2
    assert "cannot import" in capsys.readouterr().err


def test_sync_command_against_fake_github(fake_github, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake_github.add_issue(REPO, 1, title="From GitHub")
    for key, value in {
        "BOT_GITHUB_API_URL": fake_github.url,
        "BOT_APP_ID": str(fake_github.app_id),
        "BOT_PRIVATE_KEY": fake_github.private_key_pem,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    db = tmp_path / "sync.sqlite3"
    assert cli(db, "sync", REPO) == 0
    assert "synced 1 issues" in capsys.readouterr().out
    assert MirrorStore(db).get_issue(REPO, 1).title == "From GitHub"  # type: ignore[union-attr]


def test_a_cut_listing_says_how_many_matched(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "issues", "list", "--repo", REPO, "--limit", "1") == 0
    assert "showing 1 of 3 (use --limit N or --all)" in capsys.readouterr().out
    assert cli(db, "issues", "list", "--repo", REPO, "--limit", "1", "--all") == 0
    out = capsys.readouterr().out
    assert "showing" not in out and all(f"#{n} " in out for n in (1, 2, 3))
    assert cli(db, "issues", "list", "--repo", REPO, "--limit", "1", "--json") == 0
    assert len(json.loads(capsys.readouterr().out)) == 1  # JSON stays a plain list
    assert cli(db, "issues", "search", "out of memory", "--repo", REPO, "--limit", "1") == 0
    assert "more match (use --limit N or --all)" in capsys.readouterr().out


def test_labels_match_in_any_case(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "issues", "list", "--repo", REPO, "--label", "BUG", "--json") == 0
    assert [i["number"] for i in json.loads(capsys.readouterr().out)] == [2, 1]


def test_verbose_and_brief_mean_the_same_everywhere(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["list"], ["top"], ["search", "CUDA"], ["related", "1"]):
        assert cli(db, "issues", *argv, "--repo", REPO, "--brief") == 0
        brief = capsys.readouterr().out
        assert cli(db, "issues", *argv, "--repo", REPO, "-v") == 0
        verbose = capsys.readouterr().out
        assert len(verbose.splitlines()) > len(brief.splitlines()), argv
        with pytest.raises(SystemExit):
            cli(db, "issues", *argv, "--repo", REPO, "-v", "--brief")
        capsys.readouterr()


def test_stats_counts_pull_requests_linked_from_issues(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(db, "issues", "stats", "--repo", REPO) == 0
    assert "pull requests linked from issues: 1 (1 open)" in capsys.readouterr().out
    assert cli(db, "issues", "stats", "--repo", REPO, "--json") == 0
    assert json.loads(capsys.readouterr().out)["pull_requests_linked"] == {"open": 1}


@pytest.mark.parametrize(
    ("related", "groups"),
    [
        ({1: {7}, 2: {7, 8}, 3: {9}}, [([1, 2], [7])]),  # share #7
        ({1: {2}, 2: set(), 3: set()}, [([1, 2], [])]),  # one lists the other
        ({1: {7}, 2: {8}, 3: {7, 8}}, [([1, 2, 3], [7, 8])]),  # joined through #3
        ({1: {5}, 2: {6}}, []),  # nothing in common
        ({1: set()}, []),
    ],
)
def test_batch_related_groups_issues_that_share_related_ones(
    related: dict[int, set[int]], groups: list[tuple[list[int], list[int]]]
) -> None:
    assert shared_groups(related) == groups


def test_batch_related_prints_the_groups(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(db, "issues", "batch-related", "1", "2", "3", "--repo", REPO) == 0
    out = capsys.readouterr().out
    assert out.startswith("together: #1, #2")
    assert cli(db, "issues", "batch-related", "1", "2", "3", "--repo", REPO, "--json") == 0
    assert [b["group"] for b in json.loads(capsys.readouterr().out)] == [1, 1, None]
