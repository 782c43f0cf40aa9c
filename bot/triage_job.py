"""One triage run: gather the issue, decide, render the prompt, store it, upsert the comment.

The decision is the pure `bot.triage.engine.decide`; this module only fetches and
writes. Independent reads run in parallel; once the repository's config is cached a
run costs four GitHub requests (issue, comments, timeline, one comment write).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from bot.artifacts import ArtifactRef
from bot.config import RepoConfig
from bot.context import Services
from bot.github import GitHubClient, GitHubUnavailable
from bot.mirror.formats import rest_issue
from bot.mirror.prs import find_existing_prs
from bot.mirror.related import find_related
from bot.models import Issue, RelatedIssue, TriageDecision
from bot.prompt import COMMENT_MARKER_PREFIX, PromptInput, RelatedContext
from bot.repo_config import LoadedConfig
from bot.triage.engine import decide

log = logging.getLogger(__name__)

RELATED_IN_COMMENT = 5
RELATED_IN_PROMPT = 5
CommentAction = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class TriageOutcome:
    decision: TriageDecision
    config: RepoConfig
    artifact: ArtifactRef
    artifact_url: str
    comment_id: int | None
    comment_action: CommentAction


def is_triage_comment(comment: dict[str, Any], bot_login: str | None) -> bool:
    """Our comment: it starts with the marker and was written by the bot itself."""
    body = comment.get("body") or ""
    user = comment.get("user") or {}
    if not body.startswith(COMMENT_MARKER_PREFIX):
        return False
    if bot_login:
        return bool(user.get("login") == bot_login)
    return bool(user.get("type") == "Bot")


def why_related(ref: RelatedIssue) -> str:
    if ref.state == "closed":
        return "A closed issue about the same problem: its fix or its discussion may hold the answer."
    return "An open issue about the same problem: a fix may need to cover it too, or it may be a duplicate."


def numbers_line(related: list[RelatedIssue], state: str) -> str:
    return ", ".join(f"#{r.number}" for r in [r for r in related if r.state == state][:RELATED_IN_COMMENT])


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
        "existing_prs_line": ", ".join(f"#{p.number} ({p.state}, {p.found_by})" for p in decision.existing_prs),
        "related_open_line": numbers_line(decision.related, "open"),
        "related_closed_line": numbers_line(decision.related, "closed"),
        "artifact_url": artifact_url,
        "artifact_version": artifact.version,
        "artifact_expires": datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "followups": followups,
        "dispatch_label": config.labels.dispatch,
    }


async def gather_issue(gh: GitHubClient, repo: str, number: int) -> tuple[Issue, list[dict[str, Any]]]:
    """The issue with every comment and its timeline, plus the raw comments (ours among them)."""
    raw_issue, raw_comments, raw_timeline = await asyncio.gather(
        gh.get_issue(repo, number), gh.list_comments(repo, number), gh.list_timeline(repo, number)
    )
    return rest_issue(repo, raw_issue, raw_comments, raw_timeline), raw_comments


def without_bot_comments(issue: Issue, bot_login: str | None) -> Issue:
    """The issue as a reader sees it, minus our own triage comment."""
    kept = [c for c in issue.comments if not (c.body.startswith(COMMENT_MARKER_PREFIX) and (c.author == bot_login or c.author_is_bot))]
    removed = len(issue.comments) - len(kept)
    return issue.model_copy(update={"comments": kept, "comment_count": max(0, issue.comment_count - removed)})


class TriageJob:
    def __init__(self, services: Services) -> None:
        self._services = services

    async def run(self, gh: GitHubClient, repo: str, number: int, *, loaded: LoadedConfig, followups: list[str] | None = None) -> TriageOutcome:
        services = self._services
        async with services.locks(repo, number):
            started = time.perf_counter()
            bot_login = await services.github.app_slug()
            bot_login = f"{bot_login}[bot]" if bot_login else None
            try:
                fetched, raw_comments = await gather_issue(gh, repo, number)
                services.mirror.upsert_issue(fetched)
            except GitHubUnavailable:
                mirrored = services.mirror.get_issue(repo, number) if services.dry_run else None
                if mirrored is None:
                    raise
                # Dry-run with GitHub out of reach: triage what the webhooks mirrored.
                log.warning("GitHub unreachable in dry-run; triaging the mirrored copy of %s#%d", repo, number)
                fetched, raw_comments = mirrored, []
            issue = without_bot_comments(fetched, bot_login)
            config = loaded.config
            related = find_related(services.mirror, issue, limit=10)
            existing_prs = find_existing_prs(services.mirror, issue)
            decision = decide(issue, config.triage, existing_prs=existing_prs, related=related)

            rendered = services.renderer.prompt(
                PromptInput(
                    issue=issue,
                    decision=decision,
                    config=config,
                    related=[
                        RelatedContext(ref=ref, issue=services.mirror.get_issue(repo, ref.number), why=why_related(ref))
                        for ref in decision.related[:RELATED_IN_PROMPT]
                    ],
                    maintainers=frozenset(config.triage.maintainers),
                )
            )
            artifact = services.artifacts.put(repo, number, rendered.text)
            expires = artifact.created_at + services.settings.artifact_link_ttl_seconds
            artifact_url = services.links.url(artifact, expires=expires)

            body = services.renderer.comment(
                comment_context(
                    decision,
                    config,
                    errors=[*loaded.errors, *rendered.override_errors],
                    artifact=artifact,
                    artifact_url=artifact_url,
                    expires=expires,
                    followups=followups or [],
                )
            )
            comment_id, action = await self._upsert_comment(gh, repo, number, raw_comments, bot_login, body)
            if config.labels.apply_verdict_labels:
                await self._apply_verdict_label(gh, repo, number, fetched.labels, decision, config)
            services.records.save(decision, artifact_version=artifact.version, comment_id=comment_id)
            log.info(
                "triaged %s#%d: %s (score %.2f), prompt v%d, comment %s in %.0f ms",
                repo, number, decision.verdict, decision.score, artifact.version, action, (time.perf_counter() - started) * 1000,
            )
            return TriageOutcome(decision, config, artifact, artifact_url, comment_id, action)

    async def _upsert_comment(
        self, gh: GitHubClient, repo: str, number: int, raw_comments: list[dict[str, Any]], bot_login: str | None, body: str
    ) -> tuple[int | None, CommentAction]:
        """PATCH only when the text changed, POST only when there is no comment of ours."""
        ours = [c for c in raw_comments if is_triage_comment(c, bot_login)]
        if ours:
            existing = ours[0]
            if (existing.get("body") or "").strip() == body.strip():
                return existing.get("id"), "unchanged"
            updated = await gh.update_comment(repo, int(existing["id"]), body)
            return updated.get("id", existing.get("id")), "updated"
        created = await gh.create_comment(repo, number, body)
        return created.get("id"), "created"

    async def _apply_verdict_label(
        self, gh: GitHubClient, repo: str, number: int, labels: list[str], decision: TriageDecision, config: RepoConfig
    ) -> None:
        wanted = config.labels.verdict_labels.get(decision.verdict)
        stale = [name for verdict, name in config.labels.verdict_labels.items() if verdict != decision.verdict and name in labels]
        for name in stale:
            await gh.remove_label(repo, number, name)
        if wanted and wanted not in labels:
            await gh.add_labels(repo, number, [wanted])
