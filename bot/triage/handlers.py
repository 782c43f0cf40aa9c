"""Triage triggers: the trigger label, new issues (if configured), changes to a triaged issue.

`parse` (pure) says whether a delivery asks for a triage; `act` defers the run to the
end of the batch, so a burst of edits and comments about one issue is triaged once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gidgethub import sansio

from bot.config.repo import RepoConfig
from bot.delivery.context import EventContext
from bot.triage.job import TriageJob

EVENTS = ("issues", "issue_comment")
# Changes to an issue that re-run an existing triage.
CHANGES = {
    "issues": ("edited", "reopened"),
    "issue_comment": ("created", "edited", "deleted"),
}


@dataclass(frozen=True)
class Triage:
    repo: str
    number: int
    reason: str
    # A change to an issue re-runs its triage only when it was triaged before.
    only_if_triaged: bool = False
    # PR news for a dispatched issue: the dispatch follow-up refreshes its comment instead.
    unless_dispatched: bool = False


def by_a_bot(data: dict[str, Any]) -> bool:
    sender = data.get("sender")
    return isinstance(sender, dict) and sender.get("type") == "Bot"


def parse(event: sansio.Event, config: RepoConfig) -> Triage | None:
    data, action = event.data, event.data.get("action")
    issue = data.get("issue")
    if event.event not in EVENTS or not isinstance(issue, dict) or by_a_bot(data):
        return None
    repo, number = str(data["repository"]["full_name"]), int(issue["number"])
    if event.event == "issues" and action == "opened":
        if config.labels.triage_on_open:
            return Triage(repo, number, "new issue (triage_on_open)")
        return None
    if issue.get("pull_request"):
        return None
    if event.event == "issues" and action == "labeled":
        if (data.get("label") or {}).get("name") == config.labels.trigger:
            return Triage(repo, number, f"labelled {config.labels.trigger}")
        return None
    if action in CHANGES[event.event]:
        return Triage(repo, number, f"{event.event}.{action}", only_if_triaged=True)
    return None


async def act(intent: Triage, ctx: EventContext) -> None:
    services = ctx.services
    repo, number = intent.repo, intent.number
    if intent.only_if_triaged and await services.records.latest(repo, number) is None:
        return
    if intent.unless_dispatched and await services.runs.runs_for_issue(repo, number):
        return  # the dispatch follow-up re-renders this issue's comment itself

    async def run() -> None:
        gh = await ctx.github()
        loaded = await ctx.repo_config(repo)
        await TriageJob(services, ctx.log).run(gh, repo, number, loaded=loaded)

    ctx.log.info("triage of %s#%d scheduled: %s", repo, number, intent.reason)
    ctx.defer(("triage", repo, number), run)
