"""The handlers' GitHub operations, against the fake GitHub (every request spec-checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.github import GitHubClient, GitHubFactory, GraphQLError
from bot.github.client import web_url
from bot.observability.metrics import Metrics
from bot.store.actions import ActionLog, AsyncActionLog
from bot.store.thread import DatabaseThread
from tests.conftest import FAST_RETRIES
from tests.fakegithub import FakeGitHub, graphql

REPO = "octo-org/widgets"


@pytest.fixture
async def client(fake_github: FakeGitHub, github_factory: GitHubFactory) -> GitHubClient:
    fake_github.require_auth = True
    return await github_factory.for_installation(1)


async def test_get_issue_and_pull(fake_github: FakeGitHub, client: GitHubClient) -> None:
    fake_github.add_issue(REPO, 1, title="Crash on start", labels=["bug"], user="alice")
    fake_github.add_pull(REPO, 2, title="Fix crash", body="Fixes #1", head_ref="fix-1", merged=True)
    issue = await client.get_issue(REPO, 1)
    assert issue["title"] == "Crash on start"
    assert issue["user"] == issue["user"] | {"login": "alice", "type": "User"}
    assert [label["name"] for label in issue["labels"]] == ["bug"]
    assert issue["html_url"] == f"https://github.com/{REPO}/issues/1"
    assert "pull_request" not in issue
    pull_issue = await client.get_issue(REPO, 2)
    assert "pull_request" in pull_issue


async def test_comments_are_paginated_created_and_edited(
    fake_github: FakeGitHub, client: GitHubClient
) -> None:
    fake_github.add_issue(REPO, 5)
    for i in range(230):
        fake_github.add_comment(REPO, 5, f"comment {i}")
    comments = await client.list_comments(REPO, 5)
    assert [c["body"] for c in comments] == [f"comment {i}" for i in range(230)]
    pages = fake_github.requests_to("GET", "/issues/5/comments")
    assert [r.query.get("page", ["1"])[0] for r in pages] == ["1", "2", "3"]

    created = await client.create_comment(REPO, 5, "triage: actionable")
    assert fake_github.comments_of(REPO, 5)[-1]["body"] == "triage: actionable"
    assert created["user"]["type"] == "Bot"
    edited = await client.update_comment(REPO, created["id"], "triage: needs-info")
    assert edited["body"] == "triage: needs-info"
    assert fake_github.comments_of(REPO, 5)[-1]["body"] == "triage: needs-info"
    assert len(fake_github.comments_of(REPO, 5)) == 231


async def test_timeline_lists_every_event(fake_github: FakeGitHub, client: GitHubClient) -> None:
    fake_github.add_issue(REPO, 3)
    fake_github.add_pull(REPO, 4, body="Closes #3")
    fake_github.cross_reference(REPO, 3, REPO, 4)
    fake_github.add_comment(REPO, 3, "me too")
    events = await client.list_timeline(REPO, 3)
    assert [e["event"] for e in events] == ["cross-referenced", "commented"]
    assert events[0]["source"]["issue"]["number"] == 4


async def test_labels_are_added_and_removed(fake_github: FakeGitHub, client: GitHubClient) -> None:
    fake_github.add_issue(REPO, 7, labels=["bug"])
    await client.add_labels(REPO, 7, ["agent-ready", "triage: actionable"])
    assert fake_github.labels_of(REPO, 7) == ["bug", "agent-ready", "triage: actionable"]
    await client.remove_label(REPO, 7, "triage: actionable")
    await client.remove_label(REPO, 7, "not-there")  # a 404 is fine
    assert fake_github.labels_of(REPO, 7) == ["bug", "agent-ready"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("admin", "admin"),
        ("maintain", "maintain"),
        ("write", "write"),
        ("triage", "triage"),
        ("read", "read"),
        ("custom-reviewer", "read"),  # custom roles fall back to their base permission
    ],
)
async def test_permission_uses_role_name(
    fake_github: FakeGitHub, client: GitHubClient, role: str, expected: str
) -> None:
    fake_github.add_repo(REPO)
    fake_github.set_permission(REPO, "bob", role)
    assert await client.get_permission(REPO, "bob") == expected


async def test_files_are_decoded_and_missing_ones_are_none(
    fake_github: FakeGitHub, client: GitHubClient
) -> None:
    config = "labels:\n  trigger: agent-ready\n# ünïcode\n" * 20
    fake_github.set_file(REPO, ".github/agent-dispatch.yml", config)
    fake_github.set_file(REPO, ".github/agent-dispatch.yml", "on: branch\n", ref="dev")
    assert await client.get_file(REPO, ".github/agent-dispatch.yml") == config
    assert await client.get_file(REPO, ".github/agent-dispatch.yml", ref="dev") == "on: branch\n"
    assert await client.get_file(REPO, "missing.yml") is None


async def test_search_issues_honours_qualifiers_and_limit(
    fake_github: FakeGitHub, client: GitHubClient
) -> None:
    for n in range(1, 8):
        fake_github.add_issue(REPO, n, title=f"CUDA out of memory {n}", state="open")
    fake_github.add_issue(REPO, 8, title="CUDA out of memory (closed)", state="closed")
    fake_github.add_pull(REPO, 9, title="Fix CUDA out of memory")
    fake_github.add_issue("other/repo", 1, title="CUDA out of memory elsewhere")
    found = await client.search_issues(f'repo:{REPO} is:issue is:open "out of memory"', limit=5)
    assert [i["number"] for i in found] == [1, 2, 3, 4, 5]
    everything = await client.search_issues(f"repo:{REPO} CUDA", limit=100)
    assert {i["number"] for i in everything} == set(range(1, 10))


async def test_graphql_returns_data_and_raises_on_errors(
    fake_github: FakeGitHub, client: GitHubClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def answer(state: Any, query: str, variables: dict) -> dict:
        if "broken" in query:
            return {"data": None, "errors": [{"message": "Field 'broken' doesn't exist"}]}
        return {"data": {"viewer": {"login": variables["who"]}}}

    monkeypatch.setattr(graphql, "resolve", answer)
    assert await client.graphql("query($who: String!) { viewer { login } }", who="me") == {
        "viewer": {"login": "me"}
    }
    with pytest.raises(GraphQLError, match="broken"):
        await client.graphql("{ broken }")
    assert fake_github.requests_to("POST", "/graphql")[0].auth == "token"


async def test_etag_cache_is_shared_between_clients(
    fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.add_issue(REPO, 1, title="Cached")
    first = await github_factory.for_installation(1)
    second = await github_factory.for_installation(1)
    assert (await first.get_issue(REPO, 1))["title"] == "Cached"
    assert (await second.get_issue(REPO, 1))["title"] == "Cached"
    assert [r.status for r in fake_github.requests_to("GET", "/issues/1")] == [200, 304]
    fake_github.issue(REPO, 1)["title"] = "Changed"
    assert (await second.get_issue(REPO, 1))["title"] == "Changed"


async def test_requests_are_counted_per_client_and_in_metrics(fake_github: FakeGitHub) -> None:
    fake_github.add_issue(REPO, 1)
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        factory = GitHubFactory(fake_github.settings(), session, metrics, policy=FAST_RETRIES)
        client = await factory.for_installation(1)
        await client.get_issue(REPO, 1)
        await client.create_comment(REPO, 1, "hello")
    assert client.request_count == 2
    sample = metrics.registry.get_sample_value
    assert sample("agent_dispatch_github_requests_total", {"method": "GET", "status": "200"}) == 1
    # The metric also counts the factory's installation-token request.
    assert sample("agent_dispatch_github_requests_total", {"method": "POST", "status": "201"}) == 2


async def test_enterprise_server_base_url_keeps_its_prefix(
    fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def answer(state: Any, query: str, variables: dict) -> dict:
        return {"data": {"ok": True}}

    monkeypatch.setattr(graphql, "resolve", answer)
    fake_github.add_issue(REPO, 1)
    for i in range(150):
        fake_github.add_comment(REPO, 1, f"c{i}")
    settings = fake_github.settings(github_api_url=fake_github.ghes_url)
    assert settings.github_graphql_url == fake_github.url + "/api/graphql"
    async with aiohttp.ClientSession() as session:
        factory = GitHubFactory(settings, session, Metrics(), policy=FAST_RETRIES)
        client = await factory.for_installation(1)
        await client.get_issue(REPO, 1)
        assert len(await client.list_comments(REPO, 1)) == 150
        assert await client.graphql("{ ok }") == {"ok": True}
        assert await factory.app_slug() == fake_github.app_slug
    paths = [r.path for r in fake_github.requests]
    assert paths[-1] == "/api/v3/app"
    assert "/api/graphql" in paths
    assert all(p.startswith("/api/v3/") for p in paths if p != "/api/graphql")
    assert sum("/comments" in p for p in paths) == 2  # the Link header kept the prefix


async def test_app_client_and_slug(fake_github: FakeGitHub, github_factory: GitHubFactory) -> None:
    fake_github.add_repo(REPO, installation_id=3)
    assert await github_factory.app_slug() == "agent-dispatch-test"
    assert await github_factory.app_slug() == "agent-dispatch-test"
    assert len(fake_github.requests_to("GET", "/app")) == 1
    app = github_factory.app_client()
    assert (await app.get_repo_installation(REPO))["id"] == 3
    assert {r.auth for r in fake_github.requests_to(path_contains="/app")} == {"bearer"}


async def test_dry_run_records_writes_and_still_reads(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    fake_github.add_issue(REPO, 4, title="Readable")
    database = DatabaseThread()
    recorder = AsyncActionLog(ActionLog(tmp_path / "actions.sqlite3"), database)
    settings = fake_github.settings(app_id=None, private_key=None)
    assert settings.dry_run
    async with aiohttp.ClientSession() as session:
        factory = GitHubFactory(settings, session, Metrics(), recorder, policy=FAST_RETRIES)
        client = await factory.for_installation(1, idempotency_prefix="delivery-1")
        assert (await client.get_issue(REPO, 4))["title"] == "Readable"
        comment = await client.create_comment(REPO, 4, "would comment")
        await client.update_comment(REPO, comment["id"], "would edit")
        await client.add_labels(REPO, 4, ["triage: actionable"])
        await client.remove_label(REPO, 4, "agent-ready")
        # The same delivery processed again records nothing new.
        again = await factory.for_installation(1, idempotency_prefix="delivery-1")
        await again.create_comment(REPO, 4, "would comment")
        assert await factory.app_slug() is None
        with pytest.raises(ValueError):
            factory.app_client()
    assert comment["body"] == "would comment"
    assert comment["html_url"].startswith(f"{fake_github.url}/{REPO}/issues/4#issuecomment-")
    assert [r.method for r in fake_github.requests] == ["GET"]
    assert fake_github.requests[0].auth is None
    actions = list(reversed(recorder.sync.list(target="github")))
    assert [(a["kind"], a["subject"], a["idempotency_key"]) for a in actions] == [
        ("create_comment", f"{REPO}#4", "delivery-1:1"),
        ("update_comment", REPO, "delivery-1:2"),
        ("add_labels", f"{REPO}#4", "delivery-1:3"),
        ("remove_label", f"{REPO}#4", "delivery-1:4"),
    ]
    assert actions[1]["payload"] == {"comment_id": comment["id"], "body": "would edit"}
    recorder.close()
    database.close()


async def test_dry_run_needs_a_recorder(fake_github: FakeGitHub) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="ActionLog"):
            GitHubFactory(fake_github.settings(app_id=None), session, Metrics())


@pytest.mark.parametrize(
    ("api_url", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
    ],
)
def test_web_url_matches_the_api_host(api_url: str, web: str) -> None:
    assert web_url(api_url) == web
