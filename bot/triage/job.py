"""One triage run: gather the issue, decide, render the prompt, store it, upsert the comment.

The decision and the prompt's input come from the pure `bot.triage.pipeline.assess`;
this module only fetches and writes. Independent reads run in parallel; once the
repository's config is cached a run costs four GitHub requests (issue, comments,
timeline, one comment write).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from bot.config.loader import LoadedConfig
from bot.config.repo import RepoConfig
from bot.delivery.context import Services
from bot.github import GitHubClient, GitHubUnavailable, comments
from bot.github.comments import CommentAction
from bot.github.faults import GitHubRequestError
from bot.mirror.formats import rest_issue
from bot.mirror.view import MirrorStoreView
from bot.models import Issue, TriageDecision
from bot.store.artifacts import ArtifactRef
from bot.triage.comment import comment_context, followup_lines
from bot.triage.engine import duplicate_candidates
from bot.triage.pipeline import assess
from bot.triage.render import COMMENT_MARKER_PREFIX
from bot.triage.source import gather_context

log = logging.getLogger(__name__)
Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass(frozen=True)
class TriageOutcome:
    decision: TriageDecision
    config: RepoConfig
    artifact: ArtifactRef
    artifact_url: str
    comment_id: int | None
    comment_action: CommentAction


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


class TriageJob:
    def __init__(self, services: Services, log: Log = log) -> None:
        self._services = services
        self._log = log

    async def followups(self, repo: str, number: int) -> list[str]:
        runs = await self._services.runs.runs_for_issue(repo, number)
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
                await services.mirror.upsert_issue(fetched)
            except GitHubUnavailable:
                mirrored = (
                    await services.mirror.get_issue(repo, number) if services.dry_run else None
                )
                if mirrored is None:
                    raise
                # Dry-run with GitHub out of reach: triage what the webhooks mirrored.
                self._log.warning(
                    "GitHub unreachable in dry-run; triaging the mirrored copy of %s#%d",
                    repo,
                    number,
                )
                fetched, raw_comments = mirrored, []
            config = loaded.config
            await self._mirror_duplicate_candidate(gh, repo, fetched, config)
            tree = await services.trees.get(gh, repo)
            # Related search and PR lookup read the mirror: on the database thread.
            assessment = await services.mirror.call(
                lambda mirror: assess(
                    fetched, MirrorStoreView(mirror), config, bot_login, tree=tree
                )
            )
            decision = assessment.decision
            # The repository's own lines and the PR's files: fetched here, rendered purely.
            source, pulls = await gather_context(
                gh, services.blobs, tree, assessment.issue, decision
            )
            rendered = await asyncio.to_thread(  # CPU work on untrusted text: off the loop
                services.renderer.prompt,
                dataclasses.replace(assessment.prompt, source=source, pulls=pulls),
            )
            artifact = await services.artifacts.put(repo, number, rendered.text)
            errors = [*loaded.errors, *rendered.override_errors]
            artifact_url, comment_id, action = await self._write_comment(
                gh, raw_comments, decision, config, errors, artifact, bot_login
            )
            if config.labels.apply_verdict_labels:
                await self._apply_verdict_label(gh, repo, number, fetched.labels, decision, config)
            await services.records.save(
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

    async def _mirror_duplicate_candidate(
        self, gh: GitHubClient, repo: str, issue: Issue, config: RepoConfig
    ) -> None:
        """One API read for a "duplicate of #N" the mirror does not hold, so it can be checked.

        Costs nothing when there is no such claim (the usual case) or the mirror has #N.
        """
        for number in duplicate_candidates(issue, config.triage):
            if await self._services.mirror.get_issue(repo, number) is not None:
                continue
            try:
                raw = await gh.get_issue(repo, number)
            except GitHubRequestError as exc:
                self._log.info("duplicate candidate %s#%d not readable: %s", repo, number, exc)
                return
            await self._services.mirror.upsert_issue(rest_issue(repo, raw, [], []))
            return

    async def refresh_comment(
        self, gh: GitHubClient, repo: str, number: int, *, loaded: LoadedConfig
    ) -> None:
        """Re-render the comment from the stored triage (dispatch news), without a new triage.

        An issue never triaged (or whose prompt is gone) is triaged in full instead.
        """
        services = self._services
        record = await services.records.latest(repo, number)
        artifact = await services.artifacts.latest(repo, number)
        if record is None or artifact is None:
            await self.run(gh, repo, number, loaded=loaded)
            return
        async with services.locks(repo, number):
            raw_comments = await gh.list_comments(repo, number)
            bot_login = await services.github.bot_login()
            _, comment_id, action = await self._write_comment(
                gh,
                raw_comments,
                record.decision,
                loaded.config,
                [*loaded.errors],
                artifact,
                bot_login,
            )
            if comment_id != record.comment_id:
                await services.records.save(
                    record.decision, artifact_version=artifact.version, comment_id=comment_id
                )
            self._log.info("comment of %s#%d re-rendered: %s", repo, number, action)

    async def _write_comment(
        self,
        gh: GitHubClient,
        raw_comments: list[dict[str, Any]],
        decision: TriageDecision,
        config: RepoConfig,
        errors: list[str],
        artifact: ArtifactRef,
        bot_login: str | None,
    ) -> tuple[str, int | None, CommentAction]:
        """Render the triage comment for `decision` and create or edit it; (link, id, action)."""
        services = self._services
        repo, number = decision.repo, decision.number
        expires = services.links.expires_for(artifact, now=artifact.created_at)
        artifact_url = services.links.url(artifact, expires=expires)
        body = services.renderer.comment(
            comment_context(
                decision,
                config,
                errors=errors,
                artifact=artifact,
                artifact_url=artifact_url,
                expires=expires,
                followups=await self.followups(repo, number),
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
        return artifact_url, comment_id, action

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
