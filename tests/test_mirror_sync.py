"""GraphQL backfill against the fake GitHub: pagination, resume after interruption, rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.github import GitHubFactory
from bot.mirror.prs import find_existing_prs
from bot.mirror.sync import backfill
from bot.store.mirror import MirrorStore
from tests.fakegithub import FakeGitHub

REPO = "octo/widgets"


class Interrupted(Exception):
    pass


class DiesAfter:
    """The real client, but the process 'dies' after `pages` answered requests."""

    def __init__(self, client: Any, pages: int) -> None:
        self.client = client
        self.pages = pages
        self.calls = 0

    async def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        if self.calls >= self.pages:
            raise Interrupted
        self.calls += 1
        result: dict[str, Any] = await self.client.graphql(query, **variables)
        return result


def seed(fake: FakeGitHub, count: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(1, count + 1):
        fake.add_issue(
            REPO,
            n,
            title=f"Issue {n}",
            body=f"KeyError: 'k{n}'",
            labels=["bug"] if n % 2 else [],
            reactions={"+1": n % 3},
            created_at=start + timedelta(minutes=n),
        )


def graphql_requests(fake: FakeGitHub) -> int:
    return len([r for r in fake.requests if r.api_path == "/graphql"])


@pytest.fixture
def store(tmp_path: Path) -> MirrorStore:
    return MirrorStore(tmp_path / "bot.sqlite3")


async def test_pages_of_100_with_comments_timeline_and_progress(
    fake_github: FakeGitHub, github_factory: GitHubFactory, store: MirrorStore
) -> None:
    seed(fake_github, 250)
    fake_github.add_pull(
        REPO, 400, title="Fix KeyError", body="Fixes #7", head_ref="fix/issue-7", merged=True
    )
    fake_github.cross_reference(REPO, 7, REPO, 400)
    fake_github.add_comment(REPO, 7, "same here", user="dependabot[bot]", user_type="Bot")
    for i in range(130):  # more than one page of comments
        fake_github.add_comment(REPO, 8, f"comment {i}")
    seen: list[tuple[int, int]] = []
    client = await github_factory.for_installation(1)
    stored = await backfill(
        client, store, REPO, progress=lambda done, total: seen.append((done, total))
    )

    assert stored == 250
    assert seen == [(100, 250), (200, 250), (250, 250)]
    assert graphql_requests(fake_github) == 3 + 1  # 3 pages + 1 follow-up page of comments
    issue = store.get_issue(REPO, 7)
    assert issue is not None and issue.labels == ["bug"] and issue.comments[0].author_is_bot
    # The cross-reference carries the PR body, whose closing keyword is the strongest evidence.
    assert [(p.number, p.state, p.found_by) for p in find_existing_prs(store, issue)] == [
        (400, "merged", "closing-keyword")
    ]
    assert issue.timeline[0].source_head_ref == "fix/issue-7"
    eight = store.get_issue(REPO, 8)
    assert eight is not None and len(eight.comments) == 130 and eight.comment_count == 130
    assert store.get_issue(REPO, 3).reactions == {}  # type: ignore[union-attr]
    assert store.get_issue(REPO, 4).reactions == {"THUMBS_UP": 1}  # type: ignore[union-attr]


async def test_1200_issues_take_12_requests(
    fake_github: FakeGitHub, github_factory: GitHubFactory, store: MirrorStore
) -> None:
    seed(fake_github, 1200)
    client = await github_factory.for_installation(1)
    assert await backfill(client, store, REPO) == 1200
    assert graphql_requests(fake_github) == 12


async def test_interrupted_sync_resumes_where_it_stopped(
    fake_github: FakeGitHub, github_factory: GitHubFactory, store: MirrorStore
) -> None:
    seed(fake_github, 450)
    client = await github_factory.for_installation(1)
    with pytest.raises(Interrupted):
        await backfill(DiesAfter(client, 2), store, REPO)
    assert len(store.list_issues(REPO, limit=1000)) == 200
    assert store.stats(REPO)["sync"][REPO]["in_progress"]

    fake_github.requests.clear()
    assert await backfill(client, store, REPO) == 250  # only what was missing
    assert graphql_requests(fake_github) == 3
    assert len(store.list_issues(REPO, limit=1000)) == 450
    assert not store.stats(REPO)["sync"][REPO]["in_progress"]

    # A finished sync makes the next one incremental: only issues updated since.
    fake_github.add_issue(
        REPO, 999, title="Brand new", created_at=datetime.now(UTC) + timedelta(seconds=5)
    )
    fake_github.requests.clear()
    assert await backfill(client, store, REPO) == 1
    assert graphql_requests(fake_github) == 1


async def test_low_rate_limit_sleeps_until_reset(
    fake_github: FakeGitHub, github_factory: GitHubFactory, store: MirrorStore
) -> None:
    seed(fake_github, 150)
    reset = datetime.now(UTC) + timedelta(seconds=120)
    fake_github.state.graphql_rate = {"remaining": 1, "resetAt": reset.isoformat()}
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    client = await github_factory.for_installation(1)
    assert (
        await backfill(client, store, REPO, sleep=sleep, clock=lambda: reset.timestamp() - 100)
        == 150
    )
    assert slept and 100 <= slept[0] <= 102
