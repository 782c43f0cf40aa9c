"""Existing-PR detection: which pull requests already address an issue, and how we know.

Four sources, strongest first: a closing keyword in the PR body ("fixes #12",
"closes owner/repo#12", a full issue URL), a cross-reference in the issue's
timeline, the PR title naming the issue, and a branch name such as `fix/issue-12`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bot.github.references import bare_numbers, closing_targets, targets
from bot.models import ExistingPR, Issue, PRState

if TYPE_CHECKING:
    from bot.store.mirror import MirrorStore

FOUND_BY_ORDER = ("closing-keyword", "timeline", "title", "branch")

# "issue 12" in a PR title (a bare "#12" is found by the reference parser).
_TITLE_ISSUE = re.compile(r"(?i)\bissue[ \t]*#?(\d{1,7})\b")
_BRANCH_ISSUE = re.compile(
    r"(?i)(?:^|[/_-])(?:issues?|gh|fix(?:es)?|bug(?:fix)?|hotfix|close[sd]?|resolve[sd]?)"
    r"[-_/]?#?(\d{1,7})(?=$|[/_-])"
    r"|(?:^|/)(\d{1,7})(?=$|[-_/])"
)
_REPO_IN_URL = re.compile(r"github\.com/([\w.-]+/[\w.-]+)/(?:pull|issues)/\d+")


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
    """GitHub's OPEN/CLOSED/MERGED; an unknown state counts as open so nobody ignores the PR."""
    value = (github_state or "").lower()
    return "merged" if value == "merged" else "closed" if value == "closed" else "open"


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
        if event.type != "CrossReferencedEvent" or event.source_type != "PullRequest":
            continue
        url_repo = _REPO_IN_URL.search(event.source_url or "")
        source_repo = event.source_repo or (url_repo.group(1) if url_repo else issue.repo)
        if source_repo != issue.repo or event.source_number is None:
            continue
        closes = event.will_close_target or (issue.repo, issue.number) in closing_targets(
            event.source_body or "", issue.repo
        )
        add(
            ExistingPR(
                number=event.source_number,
                state=_state(event.source_state),
                url=event.source_url,
                title=event.source_title,
                repo=source_repo,
                found_by="closing-keyword" if closes else "timeline",
            )
        )

    rows = store.conn.execute(
        """SELECT i.number, i.state, i.merged, i.url, i.title, r.kind
           FROM mirror_refs r JOIN mirror_issues i ON i.id = r.source_id
           WHERE r.target_repo = ? AND r.target_number = ? AND i.is_pr = 1 AND i.repo = ?
             AND r.kind IN ('closing-keyword', 'title', 'branch')""",
        (issue.repo, issue.number, issue.repo),
    ).fetchall()
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
            )
        )
    _refresh_states(store, issue.repo, found, mirrored)
    order = {"open": 0, "merged": 1, "closed": 2}
    return sorted(found.values(), key=lambda pr: (order[pr.state], -pr.number))


def _refresh_states(
    store: MirrorStore, repo: str, found: dict[int, ExistingPR], known: dict[int, PRState]
) -> None:
    """The mirror's own PR rows (kept fresh by webhooks) beat states copied into timelines."""
    unknown = [n for n in found if n not in known]
    if unknown:
        marks = ",".join("?" * len(unknown))
        for row in store.conn.execute(
            f"""SELECT number, state, merged, title FROM mirror_issues
                WHERE repo = ? AND is_pr = 1 AND number IN ({marks})""",
            (repo, *unknown),
        ):
            known[row["number"]] = "merged" if row["merged"] else _state(row["state"])
            found[row["number"]].title = found[row["number"]].title or row["title"] or None
    for number, state in known.items():
        found[number].state = state
