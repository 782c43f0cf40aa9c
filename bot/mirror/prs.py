"""Existing-PR detection: which pull requests already address an issue, and how we know.

Sources, strongest first: GitHub's closed-by / connected events, a closing keyword in
the PR body ("fixes #12", "closes owner/repo#12", a full issue URL), a cross-reference
in the issue's timeline, the PR title naming the issue, a branch name such as
`fix/issue-12`, and a PR a comment names. Every listed PR is known to be one (the
timeline API or the mirror says so; a comment's "PR #N" alone does not), its state is
the one GitHub reported or "unknown", and `closes` is set only when the PR closes
this very issue.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.github.references import bare_numbers, closing_targets, targets
from bot.models import ExistingPR, Issue, PRState

if TYPE_CHECKING:
    from bot.store.mirror import MirrorStore

FOUND_BY_ORDER = (
    "closed-by",
    "connected",
    "closing-keyword",
    "timeline",
    "title",
    "branch",
    "comment",
)
CLOSING_KINDS = frozenset({"closed-by", "connected", "closing-keyword"})

# "issue 12" in a PR title (a bare "#12" is found by the reference parser).
_TITLE_ISSUE = re.compile(r"(?i)\bissue[ \t]*#?(\d{1,7})\b")
_BRANCH_ISSUE = re.compile(
    r"(?i)(?:^|[/_-])(?:issues?|gh|fix(?:es)?|bug(?:fix)?|hotfix|close[sd]?|resolve[sd]?)"
    r"[-_/]?#?(\d{1,7})(?=$|[/_-])"
    r"|(?:^|/)(\d{1,7})(?=$|[-_/])"
)
_REPO_IN_URL = re.compile(r"github\.com/([\w.-]+/[\w.-]+)/(?:pull|issues)/\d+")
_PR_URL = re.compile(r"github\.com/([\w.-]{1,100}/[\w.-]{1,100})/pull/(\d{1,7})\b")
_PR_WORD_REF = re.compile(r"(?i)\b(?:PR|pull request)[ \t]{0,2}#(\d{1,7})\b")
MAX_COMMENT_SCAN = 4_000


def branch_issue_numbers(branch: str) -> list[int]:
    """Issue numbers a branch name carries: fix/issue-12, gh-12, 12-crash-on-load ..."""
    return [int(a or b) for a, b in _BRANCH_ISSUE.findall(branch)]


def issue_references(item: Issue) -> list[tuple[str, int, str]]:
    """(repo, number, kind) of every issue an issue or PR points at, for the refs table."""
    refs: list[tuple[str, int, str]] = []
    text = "\n".join(
        [item.title, item.body, *(c.body for c in item.comments if not c.author_is_bot)]
    )
    refs += [(r, n, "mention") for r, n in targets(text, item.repo)]
    if item.is_pull_request:
        refs += [(r, n, "closing-keyword") for r, n in closing_targets(item.body, item.repo)]
        title_numbers = bare_numbers(item.title) + [
            int(n) for n in _TITLE_ISSUE.findall(item.title)
        ]
        refs += [(item.repo, n, "title") for n in title_numbers]
        if item.head_ref:
            refs += [(item.repo, n, "branch") for n in branch_issue_numbers(item.head_ref)]
    return [ref for ref in dict.fromkeys(refs) if (ref[0], ref[1]) != (item.repo, item.number)]


def _state(github_state: str | None) -> PRState:
    """GitHub's OPEN/CLOSED/MERGED; anything else is "unknown" (shown so, never "open")."""
    value = (github_state or "").lower()
    return value if value in ("open", "closed", "merged") else "unknown"  # type: ignore[return-value]


def comment_pr_mentions(issue: Issue) -> list[int]:
    """PR numbers human comments name ("PR #12", a /pull/12 link of this repository).

    Candidates only: a comment's word is not proof that #12 is a pull request (it may be
    an issue "tracked by #12"); `find_existing_prs` lists those the mirror knows as PRs.
    """
    found: dict[int, None] = {}
    for comment in issue.comments:
        if comment.author_is_bot:
            continue
        text = comment.body[:MAX_COMMENT_SCAN]
        for repo, number in _PR_URL.findall(text):
            if repo.lower() == issue.repo.lower():
                found.setdefault(int(number))
        for number in _PR_WORD_REF.findall(text):
            found.setdefault(int(number))
    found.pop(issue.number, None)
    return list(found)


def _event_source_repo(event_repo: str | None, url: str | None, default: str) -> str:
    url_repo = _REPO_IN_URL.search(url or "")
    return event_repo or (url_repo.group(1) if url_repo else default)


def find_existing_prs(store: MirrorStore, issue: Issue) -> list[ExistingPR]:
    """Pull requests of the issue's repository that address it: open first, then merged, closed."""
    found: dict[int, ExistingPR] = {}

    def add(pr: ExistingPR) -> None:
        known = found.get(pr.number)
        if known is None or FOUND_BY_ORDER.index(pr.found_by) < FOUND_BY_ORDER.index(
            known.found_by
        ):
            found[pr.number] = pr

    for event in issue.timeline:
        if event.source_type != "PullRequest" or event.source_number is None:
            continue
        source_repo = _event_source_repo(event.source_repo, event.source_url, issue.repo)
        if source_repo.lower() != issue.repo.lower():
            continue
        if event.type == "CrossReferencedEvent":
            closes = bool(event.will_close_target) or (
                issue.repo,
                issue.number,
            ) in closing_targets(event.source_body or "", issue.repo)
            found_by = "closing-keyword" if closes else "timeline"
        elif event.type == "ClosedEvent":
            found_by = "closed-by"  # GitHub: this PR's merge closed the issue
        elif event.type == "ConnectedEvent":
            found_by = "connected"  # linked in the sidebar: closes the issue when merged
        else:
            continue
        add(
            ExistingPR(
                number=event.source_number,
                state="merged" if found_by == "closed-by" else _state(event.source_state),
                url=event.source_url,
                title=event.source_title,
                repo=source_repo,
                found_by=found_by,
                closes=found_by in CLOSING_KINDS,
            )
        )

    rows = store.prs_referencing(issue.repo, issue.number, ("closing-keyword", "title", "branch"))
    mirrored: dict[int, PRState] = {}
    for row in rows:
        state: PRState = "merged" if row["merged"] else _state(row["state"])
        mirrored[row["number"]] = state
        add(
            ExistingPR(
                number=row["number"],
                state=state,
                url=row["url"],
                title=row["title"] or None,
                repo=issue.repo,
                found_by=row["kind"],
                closes=row["kind"] in CLOSING_KINDS,
            )
        )
    mentioned = [n for n in comment_pr_mentions(issue) if n not in found]
    for number in _known_prs(store, issue.repo, mentioned):
        add(ExistingPR(number=number, state="unknown", repo=issue.repo, found_by="comment"))
    _refresh_states(store, issue.repo, found, mirrored)
    order = {"open": 0, "merged": 1, "closed": 2, "unknown": 3}
    return sorted(found.values(), key=lambda pr: (order[pr.state], -pr.number))


def _refresh_states(
    store: MirrorStore, repo: str, found: dict[int, ExistingPR], known: dict[int, PRState]
) -> None:
    """The mirror's own PR rows (kept fresh by webhooks) beat states copied into timelines."""
    unknown = [n for n in found if n not in known]
    if unknown:
        for row in store.pr_states(repo, unknown):
            known[row["number"]] = "merged" if row["merged"] else _state(row["state"])
            found[row["number"]].title = found[row["number"]].title or row["title"] or None
    for number, state in known.items():
        found[number].state = state


def _known_prs(store: MirrorStore, repo: str, numbers: list[int]) -> list[int]:
    """Which of `numbers` the mirror holds as pull requests of `repo`."""
    return [row["number"] for row in store.pr_states(repo, numbers)]
