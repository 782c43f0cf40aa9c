"""What the triage comment shows, computed from the decision (pure).

`comment_context` builds the template's context for prompts/comment.md.j2; the job
only fetches and writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.config.repo import RepoConfig
from bot.dispatch.planner import RunItem
from bot.models import ExistingPR, RelatedIssue, TriageDecision
from bot.store.artifacts import ArtifactRef

RELATED_IN_COMMENT = 5
# How a PR was found, in words a maintainer reads.
FOUND_BY_WORDS = {
    "closed-by": "closed this issue",
    "connected": "linked to this issue",
    "closing-keyword": "says it closes this issue",
    "timeline": "mentions this issue",
    "title": "names this issue in its title",
    "branch": "branch named after this issue",
    "comment": "named in a comment",
}


def pr_line(pr: ExistingPR) -> str:
    """'#12 (open, says it closes this issue)'; a state nobody reported is 'state unknown'."""
    state = "state unknown" if pr.state == "unknown" else pr.state
    return f"#{pr.number} ({state}, {FOUND_BY_WORDS.get(pr.found_by, pr.found_by)})"


def followup_lines(items: Sequence[RunItem]) -> list[str]:
    """What the triage comment says about dispatches of the issue, oldest first."""
    lines = []
    for item in items:
        if item.status == "dispatched":
            lines.append(f"Dispatched to an agent (run {item.run_id}).")
        elif item.status == "queued":
            waits = ", ".join(f"#{n}" for n in item.depends_on) or "a free slot"
            lines.append(f"Queued in run {item.run_id}: waits for {waits}.")
        elif item.status == "refused":
            lines.append(f"Not dispatched in run {item.run_id}: {item.reason or 'refused'}.")
        elif item.status == "done":
            pr = f"PR #{item.pr_number}" if item.pr_number else "A pull request"
            lines.append(
                f"{pr} {'merged' if item.outcome == 'merged' else 'closed without merging'} (run {item.run_id})."
            )
    return lines


def numbers_line(related: list[RelatedIssue], state: str) -> str:
    return ", ".join(
        f"#{r.number}" for r in [r for r in related if r.state == state][:RELATED_IN_COMMENT]
    )


def comment_context(
    decision: TriageDecision,
    config: RepoConfig,
    *,
    errors: list[str],
    artifact: ArtifactRef,
    artifact_url: str,
    expires: float,
    followups: list[str],
) -> dict[str, Any]:
    """Everything the comment template shows, computed from the decision (pure)."""
    return {
        "decision": decision,
        "verdict_line": decision.verdict,
        "config_error": "; ".join(errors),
        "existing_prs_line": ", ".join(pr_line(p) for p in decision.existing_prs),
        "related_open_line": numbers_line(decision.related, "open"),
        "related_closed_line": numbers_line(decision.related, "closed"),
        "artifact_url": artifact_url,
        "artifact_version": artifact.version,
        "artifact_expires": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "followups": followups,
        "dispatch_label": config.labels.dispatch,
    }
