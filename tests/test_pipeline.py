"""The one triage pipeline: `assess` leaves the bot's own comments out, everywhere it is used."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config.repo import RepoConfig
from bot.models import Comment, ExistingPR, Issue, RelatedIssue
from bot.store.mirror import MirrorStore
from bot.triage.pipeline import FixedView, assess, without_bot_comments
from tests.shared_data import data_file, needs_data

BOT = "agent-dispatch[bot]"
ARTIFACT_PATH = "/artifacts/huggingface/peft/436/v2/prompt.md"
BOT_TRIAGE_COMMENT = (
    "<!-- agent-dispatch:triage hash=0123456789abcdef -->\n"
    "**Triage: actionable** (score 0.81). BOTSAYS the prompt is at "
    f"https://bot.example.org{ARTIFACT_PATH}?expires=1&sig=x, see bot/triage/job.py\n"
)
BOT_DISPATCH_COMMENT = "<!-- agent-dispatch:dispatch -->\nBOTSAYS Dispatched to an agent.\n"


def issue_with(*comments: Comment) -> Issue:
    return Issue(
        repo="o/r",
        number=7,
        title="Crash in load_model",
        body="Calling `load_model()` raises KeyError: 'x'.\n\nTraceback ...",
        author="reporter",
        comments=list(comments),
        comment_count=len(comments),
    )


@pytest.mark.parametrize(
    ("comment", "bot_login", "kept"),
    [
        # (the comment, the bot's login as known, whether assess keeps the comment)
        (Comment(author=BOT, author_is_bot=True, body=BOT_TRIAGE_COMMENT), None, False),
        (Comment(author=BOT, author_is_bot=True, body=BOT_DISPATCH_COMMENT), None, False),
        (Comment(author=BOT, body=BOT_TRIAGE_COMMENT), BOT, False),
        (Comment(author="mallory", body=BOT_TRIAGE_COMMENT), BOT, True),  # not ours: kept
        (Comment(author=BOT, author_is_bot=True, body="a bot's plain remark"), BOT, True),
        (Comment(author="other[bot]", author_is_bot=True, body=BOT_TRIAGE_COMMENT), BOT, False),
    ],
)
def test_only_the_bots_own_marked_comments_are_left_out(
    comment: Comment, bot_login: str | None, kept: bool
) -> None:
    issue = issue_with(Comment(author="reporter", body="still failing"), comment)
    result = without_bot_comments(issue, bot_login)
    assert (comment in result.comments) is kept
    assert result.comment_count == len(result.comments)


def test_assess_reads_only_through_the_view_and_quotes_no_bot_text() -> None:
    related = RelatedIssue(number=3, state="closed", title="Crash in load_model", score=0.9)
    pr = ExistingPR(number=9, state="open", found_by="closing-keyword")
    other = Issue(repo="o/r", number=3, title="Crash in load_model", state="closed")
    issue = issue_with(
        Comment(author="reporter", body="Here is the traceback"),
        Comment(author=BOT, author_is_bot=True, body=BOT_TRIAGE_COMMENT),
    )
    view = FixedView(issues={("o/r", 3): other}, related_issues=[related], prs=[pr])
    assessment = assess(issue, view, RepoConfig(), BOT)
    assert [c.author for c in assessment.issue.comments] == ["reporter"]
    assert assessment.prompt.issue == assessment.issue
    assert assessment.decision.existing_prs == [pr]
    assert assessment.decision.mode == "review-existing-pr"
    assert [r.issue for r in assessment.prompt.related] == [other]


@needs_data
def test_offline_triage_of_an_issue_holding_the_bots_comment_quotes_no_bot_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.sqlite3"
    assert main(["--db", str(db), "issues", "import", str(data_file("peft.export.json"))]) == 0
    store = MirrorStore(db)
    store.upsert_comment(
        "huggingface/peft",
        436,
        Comment(id=99, author=BOT, author_is_bot=True, body=BOT_TRIAGE_COMMENT),
    )
    issue = store.get_issue("huggingface/peft", 436)
    assert issue is not None and any("BOTSAYS" in c.body for c in issue.comments)
    store.close()
    prompt = tmp_path / "prompt.md"
    assert main(["--db", str(db), "triage", "--offline", "436", "--prompt-out", str(prompt)]) == 0
    text = prompt.read_text()
    assert "## 2." in text  # the target issue section is there, with its comments
    assert "BOTSAYS" not in text and "agent-dispatch:triage" not in text
    assert ARTIFACT_PATH not in text and "bot/triage/job.py" not in text
