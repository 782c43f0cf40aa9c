"""GraphQL endpoint of the fake GitHub.

`resolve` answers one POST /graphql; `state` is the server's FakeState (repos ->
RepoState with issues, pulls, comments, timeline as REST-shaped dicts).

It understands the queries of `bot.mirror.sync` (a page of issues with comments and
timeline items; the follow-up pages of one issue's comments or timeline) by their
operation name, and answers them in GitHub's shapes from the REST-shaped state.
Rate limit: `state.graphql_rate` (a dict with `remaining` and `resetAt`, created on
first use) drops by one per query; tests may lower it.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

from bot.models import REACTION_NAMES

_TIMELINE_TYPES = {
    "cross-referenced": "CrossReferencedEvent",
    "labeled": "LabeledEvent",
    "unlabeled": "UnlabeledEvent",
    "closed": "ClosedEvent",
    "reopened": "ReopenedEvent",
}


def _cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(base64.b64decode(cursor).decode().split(":", 1)[1])


def _page(items: list[Any], first: int, after: str | None) -> tuple[list[Any], dict[str, Any]]:
    start = _offset(after)
    chosen = items[start : start + first]
    end = start + len(chosen)
    return chosen, {"hasNextPage": end < len(items), "endCursor": _cursor(end) if chosen else after}


def _author(user: Any) -> dict[str, Any] | None:
    if not isinstance(user, dict):
        return None
    return {
        "login": user.get("login"),
        "__typename": "Bot" if user.get("type") == "Bot" else "User",
    }


def _reaction_groups(reactions: Any) -> list[dict[str, Any]]:
    reactions = reactions if isinstance(reactions, dict) else {}
    return [
        {"content": name, "reactors": {"totalCount": int(reactions.get(key) or 0)}}
        for key, name in REACTION_NAMES.items()
    ]


def _comment(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "databaseId": raw["id"],
        "author": _author(raw.get("user")),
        "authorAssociation": raw.get("author_association"),
        "body": raw.get("body") or "",
        "createdAt": raw.get("created_at"),
        "updatedAt": raw.get("updated_at"),
        "url": raw.get("html_url"),
        "reactionGroups": _reaction_groups(raw.get("reactions")),
    }


def _source(state: Any, raw: dict[str, Any]) -> dict[str, Any]:
    repo_name = (raw.get("repository") or {}).get("full_name")
    pull = raw.get("pull_request")
    found: dict[str, Any] = {
        "__typename": "PullRequest" if isinstance(pull, dict) else "Issue",
        "number": raw["number"],
        "title": raw.get("title"),
        "state": str(raw.get("state") or "open").upper(),
        "url": raw.get("html_url"),
        "repository": {"nameWithOwner": repo_name},
    }
    if isinstance(pull, dict):
        repo = state.repos.get(repo_name)
        pr = repo.pulls.get(raw["number"], {}) if repo is not None else {}
        found["merged"] = bool(pr.get("merged") or pull.get("merged_at"))
        if found["merged"]:
            found["state"] = "MERGED"
        found["body"] = raw.get("body") or ""
        found["headRefName"] = (pr.get("head") or {}).get("ref")
    return found


def _event(state: Any, raw: dict[str, Any]) -> dict[str, Any] | None:
    kind = _TIMELINE_TYPES.get(str(raw.get("event")))
    if kind is None:
        return None
    node: dict[str, Any] = {
        "__typename": kind,
        "createdAt": raw.get("created_at"),
        "actor": {"login": (raw.get("actor") or {}).get("login")},
    }
    if kind in ("LabeledEvent", "UnlabeledEvent"):
        node["label"] = {"name": (raw.get("label") or {}).get("name")}
    if kind == "CrossReferencedEvent":
        node["willCloseTarget"] = False
        node["source"] = _source(state, (raw.get("source") or {}).get("issue") or {})
    return node


def _timeline(state: Any, repo: Any, number: int) -> list[dict[str, Any]]:
    events = (_event(state, e) for e in repo.timeline.get(number, []))
    return [e for e in events if e is not None]


def _issue(state: Any, repo: Any, raw: dict[str, Any]) -> dict[str, Any]:
    number = raw["number"]
    comments, comment_page = _page([_comment(c) for c in repo.comments.get(number, [])], 100, None)
    events, event_page = _page(_timeline(state, repo, number), 100, None)
    return {
        "number": number,
        "title": raw.get("title") or "",
        "body": raw.get("body") or "",
        "state": str(raw.get("state") or "open").upper(),
        "stateReason": (raw.get("state_reason") or "").upper() or None,
        "url": raw.get("html_url"),
        "createdAt": raw.get("created_at"),
        "updatedAt": raw.get("updated_at"),
        "closedAt": raw.get("closed_at"),
        "author": _author(raw.get("user")),
        "authorAssociation": raw.get("author_association"),
        "assignees": {"nodes": [{"login": a.get("login")} for a in raw.get("assignees") or []]},
        "labels": {"nodes": [{"name": lbl.get("name")} for lbl in raw.get("labels") or []]},
        "reactionGroups": _reaction_groups(raw.get("reactions")),
        "comments": {
            "totalCount": len(repo.comments.get(number, [])),
            "pageInfo": comment_page,
            "nodes": comments,
        },
        "timelineItems": {"pageInfo": event_page, "nodes": events},
    }


def _rate_limit(state: Any) -> dict[str, Any]:
    rate = state.__dict__.setdefault(
        "graphql_rate",
        {"remaining": 5000, "resetAt": datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()},
    )
    rate["remaining"] = max(int(rate["remaining"]) - 1, 0)
    return {"cost": 1, "remaining": rate["remaining"], "resetAt": rate["resetAt"]}


def _not_found(name: str) -> dict[str, Any]:
    return {
        "data": {"repository": None},
        "errors": [
            {
                "type": "NOT_FOUND",
                "message": f"Could not resolve to a Repository with the name '{name}'.",
            }
        ],
    }


async def resolve(state: Any, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    name = f"{variables.get('owner')}/{variables.get('name')}"
    repo = state.repos.get(name)
    if repo is None:
        return _not_found(name)
    rate = _rate_limit(state)
    if "query MirrorIssues" in query:
        since = variables.get("since")
        issues = sorted(
            (
                i
                for i in repo.issues.values()
                if "pull_request" not in i and (not since or str(i.get("updated_at")) >= since)
            ),
            key=lambda i: (str(i.get("created_at")), i["number"]),
        )
        chosen, page = _page(issues, int(variables.get("first") or 100), variables.get("after"))
        return {
            "data": {
                "rateLimit": rate,
                "repository": {
                    "issues": {
                        "totalCount": len(issues),
                        "pageInfo": page,
                        "nodes": [_issue(state, repo, i) for i in chosen],
                    }
                },
            }
        }
    number = int(variables.get("number") or 0)
    if "query MirrorComments" in query:
        items = [_comment(c) for c in repo.comments.get(number, [])]
        field = "comments"
    elif "query MirrorTimeline" in query:
        items = _timeline(state, repo, number)
        field = "timelineItems"
    else:
        return {"errors": [{"message": "the fake GitHub does not understand this query"}]}
    chosen, page = _page(items, 100, variables.get("after"))
    return {
        "data": {
            "rateLimit": rate,
            "repository": {"issue": {field: {"pageInfo": page, "nodes": chosen}}},
        }
    }
