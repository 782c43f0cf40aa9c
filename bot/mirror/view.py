"""The mirror as triage reads it: an issue, related candidates, PRs that reference it."""

from __future__ import annotations

from bot.mirror.prs import find_existing_prs
from bot.mirror.related import find_related
from bot.models import ExistingPR, Issue, RelatedIssue
from bot.store.mirror import MirrorStore


class MirrorStoreView:
    """`bot.triage.pipeline.MirrorView` over the SQLite mirror."""

    def __init__(self, store: MirrorStore) -> None:
        self._store = store

    def get_issue(self, repo: str, number: int) -> Issue | None:
        return self._store.get_issue(repo, number)

    def related(self, issue: Issue, *, limit: int) -> list[RelatedIssue]:
        return find_related(self._store, issue, limit=limit)

    def existing_prs(self, issue: Issue) -> list[ExistingPR]:
        return find_existing_prs(self._store, issue)
