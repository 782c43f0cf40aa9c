"""Dispatch: the maintainer's second key. Permission, verdict, plan, Slack, PR follow-up.

Every dispatch is a run of `bot.store.runs.DispatchRuns` (one issue is a batch of one), so
the in-flight cap, dependency order and the release of queued work after a merged PR
are one mechanism. Slack messages go through the outbox, keyed so that a redelivered
event never notifies twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.config.loader import LoadedConfig
from bot.config.repo import RepoConfig
from bot.delivery.context import Services
from bot.dispatch.planner import BatchIssue, InvalidBatch, RunItem, StartedRun, parse_dependencies
from bot.github import GitHubClient, GitHubRequestError, comments
from bot.github.client import web_url
from bot.notify.slack import (
    BatchEntry,
    DispatchNotice,
    batch_plan_message,
    choose_channel,
    pr_reply_message,
    text_reply_message,
)
from bot.triage.job import Log, TriageJob

log = logging.getLogger(__name__)

DISPATCH_MARKER_PREFIX = "<!-- agent-dispatch:dispatch"
PERMISSION_RANK = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}


@dataclass(frozen=True)
class Requester:
    login: str
    is_bot: bool = False


async def may_dispatch(
    gh: GitHubClient, repo: str, requester: Requester, config: RepoConfig
) -> tuple[bool, str]:
    """Whether `requester` may send work to agents, and the role that decided it."""
    if requester.is_bot:
        return False, "a bot account"
    policy = config.dispatch
    if requester.login in policy.allowed_users:
        return True, "listed in dispatch.allowed_users"
    role = await gh.get_permission(repo, requester.login)
    if PERMISSION_RANK.get(role, 0) >= PERMISSION_RANK[policy.required_permission]:
        return True, f"permission {role}"
    owner = repo.split("/", 1)[0]
    for team in policy.allowed_teams:
        if await gh.is_team_member(owner, team, requester.login):
            return True, f"member of team {team}"
    return False, f"permission {role}"


def may_advance_run(*, merged: bool, author_role: str) -> bool:
    """Whether PR news may move a dispatch run (free a slot, release queued work, post).

    Anyone can open or close a PR saying "Fixes #N", forks included; only a merged PR
    (merging takes write access) or a PR whose author has write access or more counts.
    """
    return merged or PERMISSION_RANK.get(author_role, 0) >= PERMISSION_RANK["write"]


def who_may_dispatch(config: RepoConfig) -> str:
    """Said to whoever was refused: names no user (no @-mention pings the allowed list)."""
    policy = config.dispatch
    parts = [f"people with the `{policy.required_permission}` role or higher"]
    if policy.allowed_users or policy.allowed_teams:
        parts.append("people the repository's configuration names")
    return " and ".join(parts)


def skipped_lines(skipped: dict[int, str]) -> list[str]:
    """Issues a command named that cannot be dispatched (a missing one is not an error)."""
    return [f"- #{n} skipped: {why}" for n, why in skipped.items()]


def dispatch_comment(lines: Sequence[str]) -> str:
    """The bot's one dispatch comment on an issue (marker first, then the latest news)."""
    return f"{DISPATCH_MARKER_PREFIX} -->\n" + "\n".join(lines) + "\n"


class Dispatcher:
    def __init__(self, services: Services, log: Log = log) -> None:
        self._services = services
        self._log = log

    async def say(
        self,
        gh: GitHubClient,
        repo: str,
        number: int,
        lines: Sequence[str],
        *,
        only_first: bool = False,
    ) -> bool:
        """Upsert the bot's dispatch comment on the issue (one per issue, edited in place).

        `only_first`: say it only when the issue has no dispatch comment yet (answers to
        people who may not dispatch: they never replace news, and asking again gets no new
        answer). Returns whether the comment was written."""
        existing = await gh.list_comments(repo, number)
        bot_login = await self._services.github.bot_login()
        if only_first and any(
            comments.is_ours(c, DISPATCH_MARKER_PREFIX, bot_login) for c in existing
        ):
            return False
        await comments.upsert(
            gh,
            repo,
            number,
            existing,
            marker_prefix=DISPATCH_MARKER_PREFIX,
            bot_login=bot_login,
            body=dispatch_comment(lines),
        )
        return True

    async def _in_flight_elsewhere(self, repo: str, number: int, key: str) -> str | None:
        """Why `number` is not sent again: queued or dispatched by a run with another key.

        The signature covers only the body, so a captured delivery can come back under a
        new delivery id; a dispatch is idempotent by what it sends, not by that id."""
        for run in await self._services.runs.runs_for_issue(repo, number):
            if run.key == key:
                continue
            for item in run.items:
                if item.number == number and item.status in ("queued", "dispatched"):
                    return f"already {item.status} (run {run.id})"
        return None

    async def refuse_label(
        self, gh: GitHubClient, repo: str, number: int, label: str, lines: Sequence[str]
    ) -> None:
        await gh.remove_label(repo, number, label)
        await self.say(gh, repo, number, lines)

    async def _whereabouts(self, gh: GitHubClient, repo: str, number: int) -> str | None:
        """Why `number` cannot be dispatched from `repo` (a user's mistake), or None if it can."""
        try:
            issue = await gh.get_issue(repo, number)
        except GitHubRequestError as exc:
            if exc.status in (404, 410):
                return "not found in this repository (mistyped, deleted or transferred)"
            raise
        # A transferred issue's old URL redirects to where it lives now.
        home = str(issue.get("repository_url") or "").rsplit("/repos/", 1)[-1]
        if home and home.casefold() != repo.casefold():
            return f"transferred to {home}"
        return None

    async def _triaged(self, gh: GitHubClient, repo: str, number: int, loaded: LoadedConfig) -> Any:
        record = await self._services.records.latest(repo, number)
        if record is None:
            await TriageJob(self._services, self._log).run(gh, repo, number, loaded=loaded)
            record = await self._services.records.latest(repo, number)
        return record

    def _issue_url(self, repo: str, number: int) -> str:
        """The issue's page on the configured GitHub (github.com or an Enterprise Server)."""
        settings = self._services.settings
        base = settings.github_web_url or web_url(settings.github_api_url)
        return f"{base}/{repo}/issues/{number}"

    async def _notice(
        self, repo: str, number: int, title: str, verdict: str, summary: str, config: RepoConfig
    ) -> DispatchNotice:
        services = self._services
        artifact = await services.artifacts.latest(repo, number)
        url = services.links.url(artifact) if artifact else ""
        return DispatchNotice(
            repo=repo,
            number=number,
            title=title,
            url=self._issue_url(repo, number),
            verdict=verdict,
            summary=summary,
            artifact_url=url,
            launch_command=services.renderer.launch_command(
                config, url=url, number=number, repo=repo
            ),
        )

    async def dispatch(
        self,
        gh: GitHubClient,
        repo: str,
        numbers: Sequence[int],
        *,
        loaded: LoadedConfig,
        requester: Requester,
        key: str,
        force: bool = False,
        source: str = "label",
        origin: int | None = None,
    ) -> StartedRun | None:
        """Plan and send a dispatch of `numbers`; non-actionable ones are refused unless forced."""
        services, config = self._services, loaded.config
        issues, titles = [], {}
        skipped: dict[int, str] = {}
        for number in dict.fromkeys(numbers):
            in_flight = await self._in_flight_elsewhere(repo, number, key)
            if in_flight is not None:
                skipped[number] = in_flight
                continue
            if origin is not None and number != origin:
                why = await self._whereabouts(gh, repo, number)
                if why is not None:
                    skipped[number] = why
                    continue
            record = await self._triaged(gh, repo, number, loaded)
            mirrored = await services.mirror.get_issue(repo, number)
            titles[number] = mirrored.title if mirrored else ""
            decision = record.decision
            refusal = (
                None
                if force or decision.actionable
                else f"triage verdict is {decision.verdict}: {decision.summary}"
            )
            issues.append(
                BatchIssue(number=number, body=mirrored.body if mirrored else "", refusal=refusal)
            )
        if skipped:
            self._log.info("dispatch %s skips %s", key, skipped)
        if not issues and origin is None:  # e.g. a replayed label delivery: already out
            self._log.info("dispatch %s: nothing new to send (%s)", key, skipped)
            return None
        if not issues:
            assert origin is not None
            await self.say(gh, repo, origin, ["**Nothing dispatched.**", *skipped_lines(skipped)])
            return None
        referenced = {
            dep for issue in issues for dep in parse_dependencies(issue.body, number=issue.number)
        }
        known = {
            n: mirrored.state
            for n in referenced
            if (mirrored := await services.mirror.get_issue(repo, n))
        }
        try:
            started = await services.runs.start_run(
                repo,
                issues,
                max_in_flight=config.dispatch.max_in_flight,
                key=key,
                known=known,
                source=source,
                requested_by=requester.login,
            )
        except InvalidBatch as exc:
            self._log.info("batch for %s refused: %s", repo, exc)
            await self.say(
                gh,
                repo,
                origin or numbers[0],
                [
                    "**Dispatch refused: the batch cannot be planned.**",
                    *(f"- {p}" for p in exc.problems),
                ],
            )
            return None
        if not started.created:
            # A redelivery, or a retry after a crash between planning and announcing: the
            # announcement is idempotent (keyed notices, upserted comments), so it is made
            # again and whatever the first attempt did not get to happens now, once.
            self._log.info(
                "dispatch %s already planned (run %d): announcing it again is a no-op for "
                "what was already sent",
                key,
                started.run.id,
            )
        await self._announce(gh, repo, started, titles, loaded, requester, origin, skipped)
        return started

    async def _announce(
        self,
        gh: GitHubClient,
        repo: str,
        started: StartedRun,
        titles: dict[int, str],
        loaded: LoadedConfig,
        requester: Requester,
        origin: int | None,
        skipped: dict[int, str],
    ) -> None:
        services, config, plan, run = self._services, loaded.config, started.plan, started.run
        channel = choose_channel(config.slack.channel, services.settings.slack_channel)
        decisions = {n: await services.records.latest(repo, n) for n in titles}
        if len(titles) == 1:
            number = next(iter(titles))
            record = decisions[number]
            if number in plan.refused:
                await self.refuse_label(
                    gh,
                    repo,
                    number,
                    config.labels.dispatch,
                    [
                        f"**Not dispatched:** {plan.refused[number]}",
                        "",
                        "A maintainer can comment `/dispatch force` to send it anyway.",
                        *skipped_lines(skipped),
                    ],
                )
            elif number in plan.queued:
                await self.say(
                    gh,
                    repo,
                    number,
                    [
                        f"**Queued** (run {run.id}): {config.dispatch.max_in_flight} "
                        "dispatched issues are already in flight; this goes out when one of "
                        "them lands.",
                        *skipped_lines(skipped),
                    ],
                )
            else:
                notice = await self._notice(
                    repo,
                    number,
                    titles[number],
                    record.decision.verdict if record else "unknown",
                    record.decision.summary if record else "",
                    config,
                )
                await services.outbox.enqueue_dispatch(
                    notice, key=f"dispatch:{repo}#{number}:run{run.id}", channel=channel
                )
                if skipped and origin is not None:
                    await self.say(
                        gh,
                        repo,
                        origin,
                        [f"**Dispatched #{number}** (run {run.id}).", *skipped_lines(skipped)],
                    )
        else:
            entries = {}
            for number in titles:
                entry = BatchEntry(title=titles[number], url=self._issue_url(repo, number))
                if number in plan.dispatch_now:
                    sent = await self._notice(repo, number, titles[number], "", "", config)
                    entry = BatchEntry(
                        title=entry.title,
                        url=entry.url,
                        artifact_url=sent.artifact_url,
                        launch_command=sent.launch_command,
                    )
                entries[number] = entry
            notice_key = f"plan:{repo}:run{run.id}"
            await services.outbox.enqueue_batch_plan(
                key=notice_key,
                repo=repo,
                numbers=list(titles),
                message=batch_plan_message(repo, plan, entries, requested_by=requester.login),
                channel=channel,
            )
            await services.runs.set_notice_key(run.id, notice_key)
            if origin is not None:
                await self.say(
                    gh,
                    repo,
                    origin,
                    [
                        f"**Batch planned** (run {run.id}): {len(plan.dispatch_now)} "
                        f"dispatched, {len(plan.queued)} queued, {len(plan.refused)} refused.",
                        *(
                            f"- wave {i + 1}: " + ", ".join(f"#{n}" for n in wave)
                            for i, wave in enumerate(plan.waves)
                        ),
                        *(f"- #{n} refused: {why}" for n, why in plan.refused.items()),
                        *skipped_lines(skipped),
                    ],
                )
        services.sender.wake()
        for number in titles:
            if number not in plan.refused:  # the comment's dispatch line, from the stored triage
                await TriageJob(services, self._log).refresh_comment(
                    gh, repo, number, loaded=loaded
                )

    async def pull_request_moved(
        self,
        gh: GitHubClient,
        repo: str,
        pull: dict[str, Any],
        event: str,
        targets: Sequence[int],
        loaded: LoadedConfig,
    ) -> None:
        """A PR for dispatched issues opened, merged, closed or reopened.

        Replies in the Slack thread, releases queued work, and re-triages the issue.
        """
        services = self._services
        for number in targets:
            if not await services.runs.runs_for_issue(repo, number):
                continue
            parent = await services.outbox.thread_key_for(repo, number)
            if parent is not None:
                await services.outbox.enqueue_reply(
                    key=f"pr:{repo}#{pull['number']}:{event}:{number}",
                    parent_key=parent,
                    message=pr_reply_message(
                        repo=repo,
                        issue_number=number,
                        pr_number=int(pull["number"]),
                        pr_title=str(pull.get("title") or ""),
                        pr_url=pull.get("html_url"),
                        event=event,  # type: ignore[arg-type]
                        author=(pull.get("user") or {}).get("login"),
                    ),
                )
            if event in ("merged", "closed"):
                released = await services.runs.finish_issue(
                    repo,
                    number,
                    merged=event == "merged",
                    max_in_flight=loaded.config.dispatch.max_in_flight,
                    pr_number=int(pull["number"]),
                )
                for item in released:
                    await self._release(gh, repo, item, loaded)
            await TriageJob(services, self._log).run(gh, repo, number, loaded=loaded)
        services.sender.wake()

    async def _release(
        self, gh: GitHubClient, repo: str, item: RunItem, loaded: LoadedConfig
    ) -> None:
        """A queued issue whose turn came: its own notice, in the plan's thread if there is one."""
        services = self._services
        record = await services.records.latest(repo, item.number)
        mirrored = await services.mirror.get_issue(repo, item.number)
        run = await services.runs.get(item.run_id)
        notice = await self._notice(
            repo,
            item.number,
            mirrored.title if mirrored else "",
            record.decision.verdict if record else "unknown",
            record.decision.summary if record else "",
            loaded.config,
        )
        channel = choose_channel(loaded.config.slack.channel, services.settings.slack_channel)
        await services.outbox.enqueue_dispatch(
            notice,
            key=f"dispatch:{repo}#{item.number}:run{item.run_id}",
            channel=channel,
            thread_under=run.notice_key if run else None,
        )
        if run and run.notice_key:
            await services.outbox.enqueue_reply(
                key=f"released:{repo}#{item.number}:run{item.run_id}",
                parent_key=run.notice_key,
                message=text_reply_message(
                    f"#{item.number} released from the queue: its dependencies landed."
                ),
            )
        await TriageJob(services, self._log).refresh_comment(gh, repo, item.number, loaded=loaded)
