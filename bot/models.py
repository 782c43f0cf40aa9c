"""Data shapes shared by the mirror, the triage engine, the prompt and the handlers.

Issues from every source (coordinator export, REST JSON lines, GraphQL backfill,
webhooks) are normalised into these models so the rest of the bot sees one shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

IssueState = Literal["open", "closed"]
# "unknown": GitHub or the mirror did not say; shown as such and never changes the mode.
PRState = Literal["open", "merged", "closed", "unknown"]
Verdict = Literal[
    "actionable",
    "needs-info",
    "needs-hardware",
    "needs-decision",
    "question",
    "duplicate",
    "close-candidate",
]
Mode = Literal["fix", "implement", "review-existing-pr", "verify-close", "investigate", "docs"]

# GitHub's GraphQL reaction names; REST names ("+1", "laugh", ...) are mapped onto these.
REACTION_NAMES = {
    "+1": "THUMBS_UP",
    "-1": "THUMBS_DOWN",
    "laugh": "LAUGH",
    "hooray": "HOORAY",
    "confused": "CONFUSED",
    "heart": "HEART",
    "rocket": "ROCKET",
    "eyes": "EYES",
}


class Comment(BaseModel):
    model_config = ConfigDict(frozen=False)

    id: int | None = None
    author: str | None = None
    # OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE ... (None when the source lacks it)
    author_association: str | None = None
    author_is_bot: bool = False
    body: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    reactions: dict[str, int] = Field(default_factory=dict)
    url: str | None = None


class TimelineEvent(BaseModel):
    """One timeline item: a cross-reference, a label change, a close or reopen."""

    type: str
    created_at: datetime | None = None
    actor: str | None = None
    label: str | None = None
    source_type: Literal["Issue", "PullRequest"] | None = None
    source_repo: str | None = None
    source_number: int | None = None
    source_title: str | None = None
    source_state: str | None = None  # OPEN, CLOSED, MERGED as GitHub spells it
    source_url: str | None = None
    source_body: str | None = None
    source_head_ref: str | None = None
    will_close_target: bool | None = None


class Issue(BaseModel):
    """An issue (or pull request) with everything triage needs to read."""

    repo: str  # "owner/name"
    number: int
    title: str = ""
    body: str = ""
    state: IssueState = "open"
    state_reason: str | None = None
    is_pull_request: bool = False
    merged: bool | None = None  # pull requests only
    head_ref: str | None = None  # pull requests only
    author: str | None = None
    author_association: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    assignees: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    reactions: dict[str, int] = Field(default_factory=dict)
    comment_count: int = 0
    comments: list[Comment] = Field(default_factory=list)
    timeline: list[TimelineEvent] = Field(default_factory=list)
    url: str | None = None

    @property
    def reaction_total(self) -> int:
        return sum(self.reactions.values())


class Signal(BaseModel):
    name: str
    weight: float
    evidence: str = ""


class ExistingPR(BaseModel):
    number: int
    state: PRState
    url: str | None = None
    title: str | None = None
    repo: str | None = None
    # timeline, closing-keyword, title, branch, closed-by, connected, comment
    found_by: str
    # The PR closes this very issue: a closing keyword for it, GitHub's willCloseTarget,
    # or a closed-by / connected event. Only such a PR, merged, makes a close-candidate.
    closes: bool = False


class RelatedIssue(BaseModel):
    number: int
    state: IssueState
    title: str
    score: float
    matched: list[str] = Field(default_factory=list)
    url: str | None = None
    repo: str | None = None
    # Why it is related, in plain words ("shares the error line `...`").
    reason: str = ""


class Priority(BaseModel):
    score: float = 0.0
    reactions: int = 0
    comments: int = 0
    labels: list[str] = Field(default_factory=list)


class TriageDecision(BaseModel):
    """The result of triage: the contract printed by `triage --json` (see DESIGN.md)."""

    repo: str
    number: int
    verdict: Verdict
    score: float = Field(ge=0.0, le=1.0)
    signals: list[Signal] = Field(default_factory=list)
    hardware: list[str] = Field(default_factory=list)
    existing_prs: list[ExistingPR] = Field(default_factory=list)
    related: list[RelatedIssue] = Field(default_factory=list)
    priority: Priority = Field(default_factory=Priority)
    mode: Mode = "fix"
    summary: str = ""
    # What a reporter or maintainer could add to make the issue actionable.
    missing: list[str] = Field(default_factory=list)
    duplicate_of: int | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def actionable(self) -> bool:
        return self.verdict == "actionable"
