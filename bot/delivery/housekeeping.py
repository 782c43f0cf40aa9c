"""GitHub's housekeeping events: ping and installation changes are acknowledged and logged;
repositories the App is installed on get the configured labels they lack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gidgethub import routing, sansio

from bot.config.repo import LabelConfig
from bot.delivery.context import EventContext
from bot.github.client import GitHubClient
from bot.github.faults import GitHubRequestError, GitHubUnavailable

router = routing.Router()


@router.register("ping")
async def on_ping(event: sansio.Event, ctx: EventContext) -> None:
    hook = event.data.get("hook") or {}
    ctx.log.info(
        "ping for hook %s (events: %s)", hook.get("id"), ",".join(hook.get("events") or [])
    )


@router.register("installation")
@router.register("installation_repositories")
async def on_installation(event: sansio.Event, ctx: EventContext) -> None:
    account = (event.data.get("installation") or {}).get("account") or {}
    ctx.log.info("installation %s for %s", event.data.get("action"), account.get("login"))


@dataclass(frozen=True)
class LabelSpec:
    name: str
    color: str  # six hex digits, no '#'
    description: str  # GitHub allows 100 characters


VERDICT_COLORS = {
    "actionable": "0e8a16",
    "needs-info": "fbca04",
    "needs-hardware": "c5def5",
    "needs-decision": "d93f0b",
    "question": "cc317c",
    "duplicate": "cfd3d7",
    "close-candidate": "5319e7",
}


def wanted_labels(config: LabelConfig) -> list[LabelSpec]:
    """The labels the bot reads or writes under `config`, each with a colour and a description."""
    wanted = [
        LabelSpec(config.trigger, "1d76db", "agent-dispatch: triage this issue for an agent"),
        LabelSpec(config.dispatch, "0e8a16", "agent-dispatch: send this issue to an agent"),
    ]
    if config.apply_verdict_labels:
        wanted += [
            LabelSpec(
                name, VERDICT_COLORS.get(verdict, "ededed"), f"agent-dispatch verdict: {verdict}"
            )
            for verdict, name in config.verdict_labels.items()
        ]
    once: dict[str, LabelSpec] = {}
    for spec in wanted:  # GitHub's label names are unique in any case
        once.setdefault(spec.name.lower(), spec)
    return list(once.values())


def added_repositories(event: str, data: dict[str, Any]) -> list[str]:
    """OWNER/NAME of the repositories an installation (or its change) adds."""
    key = "repositories" if event == "installation" else "repositories_added"
    found = data.get(key)
    if not isinstance(found, list):
        return []
    return [
        r["full_name"]
        for r in found
        if isinstance(r, dict) and isinstance(r.get("full_name"), str) and "/" in r["full_name"]
    ]


async def ensure_labels(gh: GitHubClient, repo: str, wanted: list[LabelSpec]) -> list[str]:
    """Create the labels `repo` lacks; an existing one is never renamed or recoloured."""
    created = []
    for spec in wanted:
        if await gh.get_label(repo, spec.name) is not None:
            continue
        if await gh.create_label(repo, spec.name, spec.color, spec.description):
            created.append(spec.name)
    return created


@router.register("installation", action="created")
@router.register("installation_repositories", action="added")
async def on_repositories_added(event: sansio.Event, ctx: EventContext) -> None:
    if not ctx.should_act(event.data):
        return
    repos = added_repositories(event.event, event.data)
    if not repos:
        return
    gh = await ctx.github()
    for repo in repos:
        config = (await ctx.repo_config(repo)).config
        try:
            created = await ensure_labels(gh, repo, wanted_labels(config.labels))
        except GitHubRequestError as exc:  # e.g. no Issues: write on this repository
            ctx.log.warning("labels of %s not created: %s", repo, exc)
            continue
        except GitHubUnavailable:
            if not ctx.services.dry_run:
                raise  # the delivery is retried and the labels created then
            ctx.log.warning("GitHub unreachable in dry-run; labels of %s not checked", repo)
            continue
        ctx.log.info("labels of %s: %s", repo, ", ".join(created) or "all there already")
