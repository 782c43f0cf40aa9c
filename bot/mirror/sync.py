"""`agent-dispatch sync OWNER/NAME`: backfill the mirror through GitHub's GraphQL API.

One request fetches 100 issues with their comments, labels, reactions and timeline
(1,200 issues: 12 pages). Each page and its cursor are committed together, so an
interrupted sync resumes where it stopped; a completed one makes the next sync ask
only for issues updated since. When the rate limit runs low, we sleep until reset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.mirror.formats import _when
from bot.models import REACTION_NAMES, Comment, Issue, TimelineEvent
from bot.store.mirror import MirrorStore

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (issues done, issues in total)


class GraphQLClient(Protocol):
    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]: ...


_ACTOR = "actor { login }"
_REACTIONS = "reactionGroups { content reactors { totalCount } }"
_COMMENT_FIELDS = f"""
    databaseId author {{ login __typename }} authorAssociation body createdAt updatedAt url
    {_REACTIONS}"""
_TIMELINE_FIELDS = f"""
    __typename
    ... on CrossReferencedEvent {{
      createdAt {_ACTOR} willCloseTarget
      source {{
        __typename
        ... on Issue {{ number title state url repository {{ nameWithOwner }} }}
        ... on PullRequest {{
          number title state merged url body headRefName repository {{ nameWithOwner }}
        }}
      }}
    }}
    ... on LabeledEvent {{ createdAt {_ACTOR} label {{ name }} }}
    ... on UnlabeledEvent {{ createdAt {_ACTOR} label {{ name }} }}
    ... on ClosedEvent {{
      createdAt {_ACTOR}
      closer {{ __typename ... on PullRequest {{ number title url merged state }} }}
    }}
    ... on ConnectedEvent {{
      createdAt {_ACTOR}
      subject {{ __typename ... on PullRequest {{ number title url merged state }} }}
    }}
    ... on ReopenedEvent {{ createdAt {_ACTOR} }}"""
_TIMELINE_TYPES = (
    "[CROSS_REFERENCED_EVENT, LABELED_EVENT, UNLABELED_EVENT, CLOSED_EVENT, REOPENED_EVENT,"
    " CONNECTED_EVENT]"
)

ISSUES_QUERY = f"""
query MirrorIssues($owner: String!, $name: String!, $first: Int!, $after: String, $since: DateTime) {{
  rateLimit {{ cost remaining resetAt }}
  repository(owner: $owner, name: $name) {{
    issues(first: $first, after: $after, filterBy: {{since: $since}},
           orderBy: {{field: CREATED_AT, direction: ASC}}) {{
      totalCount
      pageInfo {{ hasNextPage endCursor }}
      nodes {{
        number title body state stateReason url createdAt updatedAt closedAt
        author {{ login }} authorAssociation
        assignees(first: 20) {{ nodes {{ login }} }}
        labels(first: 50) {{ nodes {{ name }} }}
        {_REACTIONS}
        comments(first: 100) {{
          totalCount pageInfo {{ hasNextPage endCursor }}
          nodes {{ {_COMMENT_FIELDS} }}
        }}
        timelineItems(first: 100, itemTypes: {_TIMELINE_TYPES}) {{
          pageInfo {{ hasNextPage endCursor }}
          nodes {{ {_TIMELINE_FIELDS} }}
        }}
      }}
    }}
  }}
}}"""

# Follow-up pages for the rare issue with more than 100 comments or timeline items.
MORE_COMMENTS_QUERY = f"""
query MirrorComments($owner: String!, $name: String!, $number: Int!, $after: String) {{
  rateLimit {{ cost remaining resetAt }}
  repository(owner: $owner, name: $name) {{
    issue(number: $number) {{
      comments(first: 100, after: $after) {{
        pageInfo {{ hasNextPage endCursor }}
        nodes {{ {_COMMENT_FIELDS} }}
      }}
    }}
  }}
}}"""

MORE_TIMELINE_QUERY = f"""
query MirrorTimeline($owner: String!, $name: String!, $number: Int!, $after: String) {{
  rateLimit {{ cost remaining resetAt }}
  repository(owner: $owner, name: $name) {{
    issue(number: $number) {{
      timelineItems(first: 100, after: $after, itemTypes: {_TIMELINE_TYPES}) {{
        pageInfo {{ hasNextPage endCursor }}
        nodes {{ {_TIMELINE_FIELDS} }}
      }}
    }}
  }}
}}"""


def _login(value: Any) -> str | None:
    return value.get("login") if isinstance(value, dict) else None


def _reactions(groups: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for group in groups or []:
        count = (group.get("reactors") or group.get("users") or {}).get("totalCount") or 0
        name = REACTION_NAMES.get(group.get("content"), group.get("content"))
        if isinstance(name, str) and count > 0:
            found[name] = count
    return found


def graphql_comment(node: dict[str, Any]) -> Comment:
    author = node.get("author")
    return Comment(
        id=node.get("databaseId"),
        author=_login(author),
        author_association=node.get("authorAssociation"),
        author_is_bot=isinstance(author, dict) and author.get("__typename") == "Bot",
        body=node.get("body") or "",
        created_at=_when(node.get("createdAt")),
        updated_at=_when(node.get("updatedAt")),
        reactions=_reactions(node.get("reactionGroups")),
        url=node.get("url"),
    )


def graphql_event(node: dict[str, Any]) -> TimelineEvent | None:
    kind = node.get("__typename")
    if not isinstance(kind, str):
        return None
    label = node.get("label")
    event = TimelineEvent(
        type=kind,
        created_at=_when(node.get("createdAt")),
        actor=_login(node.get("actor")),
        label=label.get("name") if isinstance(label, dict) else None,
    )
    source = node.get("source")
    if kind == "CrossReferencedEvent" and isinstance(source, dict):
        source_type = source.get("__typename")
        if source_type not in ("Issue", "PullRequest"):
            return None
        event.source_type = source_type
        event.source_number = source.get("number")
        event.source_title = source.get("title")
        event.source_state = "MERGED" if source.get("merged") else source.get("state")
        event.source_url = source.get("url")
        event.source_body = source.get("body")
        event.source_head_ref = source.get("headRefName")
        event.source_repo = (source.get("repository") or {}).get("nameWithOwner")
        event.will_close_target = node.get("willCloseTarget")
    # The PR that closed the issue, or one linked to it in the sidebar (closes it on merge).
    linked = node.get("closer") if kind == "ClosedEvent" else node.get("subject")
    if (
        kind in ("ClosedEvent", "ConnectedEvent")
        and isinstance(linked, dict)
        and linked.get("__typename") == "PullRequest"
    ):
        event.source_type = "PullRequest"
        event.source_number = linked.get("number")
        event.source_title = linked.get("title")
        event.source_url = linked.get("url")
        event.source_state = "MERGED" if linked.get("merged") else linked.get("state")
    return event


def graphql_issue(repo: str, node: dict[str, Any]) -> Issue:
    comments = node.get("comments") or {}
    timeline = node.get("timelineItems") or {}
    events = [graphql_event(n) for n in timeline.get("nodes") or [] if isinstance(n, dict)]
    parsed_comments = [
        graphql_comment(n) for n in comments.get("nodes") or [] if isinstance(n, dict)
    ]
    return Issue(
        repo=repo,
        number=node["number"],
        title=node.get("title") or "",
        body=node.get("body") or "",
        state="closed" if node.get("state") == "CLOSED" else "open",
        state_reason=node.get("stateReason"),
        author=_login(node.get("author")),
        author_association=node.get("authorAssociation"),
        created_at=_when(node.get("createdAt")),
        updated_at=_when(node.get("updatedAt")),
        closed_at=_when(node.get("closedAt")),
        assignees=[
            a for a in (_login(n) for n in (node.get("assignees") or {}).get("nodes") or []) if a
        ],
        labels=[n["name"] for n in (node.get("labels") or {}).get("nodes") or [] if n.get("name")],
        reactions=_reactions(node.get("reactionGroups")),
        comment_count=comments.get("totalCount") or len(parsed_comments),
        comments=parsed_comments,
        timeline=[e for e in events if e is not None],
        url=node.get("url"),
    )


class _Backfill:
    def __init__(
        self,
        client: GraphQLClient,
        repo: str,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        self.repo = repo
        self.owner, self.name = repo.split("/", 1)
        self.sleep = sleep
        self.clock = clock
        self.requests = 0
        self.last_cost = 1

    async def query(self, query: str, **variables: Any) -> dict[str, Any]:
        data = await self.client.graphql(query, owner=self.owner, name=self.name, **variables)
        self.requests += 1
        if "data" in data and "repository" not in data:
            data = data["data"]
        await self._respect_rate_limit(data.get("rateLimit"))
        return data

    async def _respect_rate_limit(self, limit: Any) -> None:
        """Sleep until reset when the next request would not fit in what is left."""
        if not isinstance(limit, dict):
            return
        self.last_cost = max(int(limit.get("cost") or 1), 1)
        remaining = limit.get("remaining")
        reset = _when(limit.get("resetAt"))
        if isinstance(remaining, int) and remaining < self.last_cost and reset is not None:
            delay = max(reset.timestamp() - self.clock(), 0.0) + 1.0
            log.warning("GraphQL rate limit low (%s left); sleeping %.0f s", remaining, delay)
            await self.sleep(delay)

    async def complete(self, issue: Issue, node: dict[str, Any]) -> None:
        """Fetch the comments and timeline items beyond the first 100."""
        for field, query, target in (
            ("comments", MORE_COMMENTS_QUERY, "comments"),
            ("timelineItems", MORE_TIMELINE_QUERY, "timeline"),
        ):
            page = (node.get(field) or {}).get("pageInfo") or {}
            while page.get("hasNextPage"):
                data = await self.query(query, number=issue.number, after=page.get("endCursor"))
                connection = ((data.get("repository") or {}).get("issue") or {}).get(field) or {}
                nodes = [n for n in connection.get("nodes") or [] if isinstance(n, dict)]
                if target == "comments":
                    issue.comments += [graphql_comment(n) for n in nodes]
                else:
                    issue.timeline += [e for e in map(graphql_event, nodes) if e is not None]
                page = connection.get("pageInfo") or {}


async def backfill(
    client: GraphQLClient,
    store: MirrorStore,
    repo: str,
    *,
    page_size: int = 100,
    progress: Progress | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> int:
    """Mirror `repo`'s issues; resumes an interrupted run. Returns the issues stored now."""
    run = _Backfill(client, repo, sleep, clock)
    state = store.sync_state(repo)
    if state is not None and state["cursor"] is not None:
        cursor, since = state["cursor"], state["since"]
        done = int(state["fetched"])
        log.info("resuming sync of %s after %d issues", repo, done)
    else:
        cursor, done = None, 0
        since = state["completed_at"] if state is not None else None
        store.start_sync(repo, since)
    stored = 0
    while True:
        data = await run.query(ISSUES_QUERY, first=page_size, after=cursor, since=since)
        connection = ((data.get("repository") or {}).get("issues")) or {}
        nodes = [n for n in connection.get("nodes") or [] if isinstance(n, dict)]
        issues = []
        for node in nodes:
            issue = graphql_issue(repo, node)
            await run.complete(issue, node)
            issues.append(issue)
        page = connection.get("pageInfo") or {}
        cursor = page.get("endCursor") or cursor
        store.save_sync_page(repo, issues, cursor, since=since)
        stored += len(issues)
        done += len(issues)
        if progress is not None:
            progress(done, int(connection.get("totalCount") or done))
        if not page.get("hasNextPage") or not nodes:
            break
    store.finish_sync(repo)
    log.info("synced %d issues of %s in %d requests", stored, repo, run.requests)
    return stored
