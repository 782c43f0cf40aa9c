"""The one triage pipeline: issue, mirror view, config and bot login in; the assessment out.

`assess` is pure: it reads only through the narrow `MirrorView` (an issue by number,
related candidates, pull requests that reference the issue) and writes nothing. The
live job, the offline CLI, the golden tests and the benchmarks all call it, so our own
comments are left out in exactly one place (`without_bot_comments`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bot.config.repo import RepoConfig
from bot.models import ExistingPR, Issue, RelatedIssue, TriageDecision
from bot.triage.engine import decide, duplicate_candidates
from bot.triage.render import PromptInput, RelatedContext

if TYPE_CHECKING:
    from bot.github.trees import RepoTree

# Every comment the bot writes (the triage comment, the dispatch comment) starts so.
BOT_MARKER_PREFIX = "<!-- agent-dispatch:"
RELATED_CANDIDATES = 10
RELATED_IN_PROMPT = 5


class MirrorView(Protocol):
    """What triage reads from the mirror; nothing else of the store is reachable."""

    def get_issue(self, repo: str, number: int) -> Issue | None: ...

    def related(self, issue: Issue, *, limit: int) -> list[RelatedIssue]: ...

    def existing_prs(self, issue: Issue) -> list[ExistingPR]: ...


@dataclass(frozen=True)
class FixedView:
    """A `MirrorView` with fixed answers, for benchmarks and tests that have no mirror."""

    issues: Mapping[tuple[str, int], Issue] = field(default_factory=dict)
    related_issues: Sequence[RelatedIssue] = ()
    prs: Sequence[ExistingPR] = ()

    def get_issue(self, repo: str, number: int) -> Issue | None:
        return self.issues.get((repo, number))

    def related(self, issue: Issue, *, limit: int) -> list[RelatedIssue]:
        return list(self.related_issues[:limit])

    def existing_prs(self, issue: Issue) -> list[ExistingPR]:
        return list(self.prs)


@dataclass(frozen=True)
class Assessment:
    """The triage of one issue: what was read, what was decided, what the prompt shows.

    The comment's context follows from `decision` and `config` once the prompt is stored
    (`bot.triage.comment.comment_context`).
    """

    issue: Issue  # as a reader sees it: the bot's own comments left out
    decision: TriageDecision
    prompt: PromptInput
    config: RepoConfig


def is_bot_comment_author(author: str | None, author_is_bot: bool, bot_login: str | None) -> bool:
    return author_is_bot or (bot_login is not None and author == bot_login)


def without_bot_comments(issue: Issue, bot_login: str | None) -> Issue:
    """The issue minus the comments the bot itself wrote (marked, by the bot's account)."""
    kept = [
        c
        for c in issue.comments
        if not (
            c.body.startswith(BOT_MARKER_PREFIX)
            and is_bot_comment_author(c.author, c.author_is_bot, bot_login)
        )
    ]
    removed = len(issue.comments) - len(kept)
    if not removed:
        return issue
    return issue.model_copy(
        update={"comments": kept, "comment_count": max(0, issue.comment_count - removed)}
    )


def why_related(ref: RelatedIssue) -> str:
    if ref.state == "closed":
        return (
            "A closed issue about the same problem: its fix or its discussion may hold the answer."
        )
    return (
        "An open issue about the same problem: a fix may need to cover it too, "
        "or it may be a duplicate."
    )


def known_issues(issue: Issue, view: MirrorView, config: RepoConfig) -> list[int]:
    """The duplicate candidates the mirror holds as issues (not PRs) of the same repository."""
    found = []
    for number in duplicate_candidates(issue, config.triage):
        other = view.get_issue(issue.repo, number)
        if other is not None and not other.is_pull_request:
            found.append(number)
    return found


def assess(
    issue: Issue,
    view: MirrorView,
    config: RepoConfig,
    bot_login: str | None,
    tree: RepoTree | None = None,
) -> Assessment:
    """Decide about `issue` and gather what its prompt shows (reads only through `view`).

    `tree` is the default branch's tree (bot/github/trees.py), when known.
    """
    issue = without_bot_comments(issue, bot_login)
    decision = decide(
        issue,
        config.triage,
        existing_prs=view.existing_prs(issue),
        related=view.related(issue, limit=RELATED_CANDIDATES),
        known_issues=known_issues(issue, view, config),
        tree=tree,
    )
    prompt = PromptInput(
        issue=issue,
        decision=decision,
        config=config,
        related=[
            RelatedContext(
                ref=ref, issue=view.get_issue(issue.repo, ref.number), why=why_related(ref)
            )
            for ref in decision.related[:RELATED_IN_PROMPT]
        ],
    )
    return Assessment(issue=issue, decision=decision, prompt=prompt, config=config)
