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
from typing import Any

from bot.config.loader import LoadedConfig
from bot.config.repo import RepoConfig
from bot.delivery.context import Services
from bot.github import GitHubClient, GitHubUnavailable, comments
from bot.github.comments import CommentAction
from bot.mirror.formats import rest_issue
from bot.mirror.prs import find_existing_prs
from bot.mirror.related import find_related
from bot.models import Issue, RelatedIssue, TriageDecision
from bot.store.artifacts import ArtifactRef
from bot.triage.comment import comment_context, followup_lines
from bot.triage.engine import decide
from bot.triage.render import COMMENT_MARKER_PREFIX, PromptInput, RelatedContext

log = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[logging.Logger]

RELATED_IN_PROMPT = 5


@dataclass(frozen=True)
class TriageOutcome:
    decision: TriageDecision
    config: RepoConfig
    artifact: ArtifactRef
    artifact_url: str
    comment_id: int | None
    comment_action: CommentAction


def why_related(ref: RelatedIssue) -> str:
    if ref.state == "closed":
        return (
            "A closed issue about the same problem: its fix or its discussion may hold the answer."
        )
    return "An open issue about the same problem: a fix may need to cover it too, or it may be a duplicate."


async def gather_issue(
    gh: GitHubClient, repo: str, number: int
) -> tuple[Issue, list[dict[str, Any]]]:
    """The issue with every comment and its timeline, plus the raw comments (ours among them)."""
    issue = asyncio.ensure_future(gh.get_issue(repo, number))
    comments = asyncio.ensure_future(gh.list_comments(repo, number))
    timeline = asyncio.ensure_future(gh.list_timeline(repo, number))
    try:
        await asyncio.gather(issue, comments, timeline)
    except BaseException:
        for task in (issue, comments, timeline):  # one failed: the others would only keep retrying
            task.cancel()
        raise
    raw_issue, raw_comments, raw_timeline = issue.result(), comments.result(), timeline.result()
    return rest_issue(repo, raw_issue, raw_comments, raw_timeline), raw_comments


def without_bot_comments(issue: Issue, bot_login: str | None) -> Issue:
    """The issue as a reader sees it, minus our own triage comment."""
    kept = [
        c
        for c in issue.comments
        if not (
            c.body.startswith(COMMENT_MARKER_PREFIX) and (c.author == bot_login or c.author_is_bot)
        )
    ]
    removed = len(issue.comments) - len(kept)
    return issue.model_copy(
        update={"comments": kept, "comment_count": max(0, issue.comment_count - removed)}
    )


class TriageJob:
    def __init__(self, services: Services, log: Log = log) -> None:
        self._services = services
        self._log = log

    def followups(self, repo: str, number: int) -> list[str]:
        runs = self._services.runs.runs_for_issue(repo, number)
        return followup_lines(
            [i for run in reversed(runs) for i in run.items if i.number == number]
        )

    async def run(
        self, gh: GitHubClient, repo: str, number: int, *, loaded: LoadedConfig
    ) -> TriageOutcome:
        services = self._services
        async with services.locks(repo, number):
            started = time.perf_counter()
            bot_login = await services.github.bot_login()
            try:
                fetched, raw_comments = await gather_issue(gh, repo, number)
                services.mirror.upsert_issue(fetched)
            except GitHubUnavailable:
                mirrored = services.mirror.get_issue(repo, number) if services.dry_run else None
                if mirrored is None:
                    raise
                # Dry-run with GitHub out of reach: triage what the webhooks mirrored.
                self._log.warning(
                    "GitHub unreachable in dry-run; triaging the mirrored copy of %s#%d",
                    repo,
                    number,
                )
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
                        RelatedContext(
                            ref=ref,
                            issue=services.mirror.get_issue(repo, ref.number),
                            why=why_related(ref),
                        )
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
                    followups=self.followups(repo, number),
                )
            )
            comment_id, action = await comments.upsert(
                gh,
                repo,
                number,
                raw_comments,
                marker_prefix=COMMENT_MARKER_PREFIX,
                bot_login=bot_login,
                body=body,
            )
            if config.labels.apply_verdict_labels:
                await self._apply_verdict_label(gh, repo, number, fetched.labels, decision, config)
            services.records.save(
                decision, artifact_version=artifact.version, comment_id=comment_id
            )
            self._log.info(
                "triaged %s#%d: %s (score %.2f), prompt v%d, comment %s in %.0f ms",
                repo,
                number,
                decision.verdict,
                decision.score,
                artifact.version,
                action,
                (time.perf_counter() - started) * 1000,
            )
            return TriageOutcome(decision, config, artifact, artifact_url, comment_id, action)

    async def _apply_verdict_label(
        self,
        gh: GitHubClient,
        repo: str,
        number: int,
        labels: list[str],
        decision: TriageDecision,
        config: RepoConfig,
    ) -> None:
        wanted = config.labels.verdict_labels.get(decision.verdict)
        stale = [
            name
            for verdict, name in config.labels.verdict_labels.items()
            if verdict != decision.verdict and name in labels
        ]
        for name in stale:
            await gh.remove_label(repo, number, name)
        if wanted and wanted not in labels:
            await gh.add_labels(repo, number, [wanted])
