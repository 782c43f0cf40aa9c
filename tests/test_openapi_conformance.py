"""The conformance checker itself: valid requests pass, each kind of mistake is named."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import assert_conformance
from tests.fakegithub import FakeGitHub, load_spec


@pytest.mark.parametrize(
    ("method", "path", "query", "body"),
    [
        ("GET", "/repos/o/r/issues/5", {}, None),
        ("GET", "/api/v3/repos/o/r/pulls/3", {}, None),
        ("GET", "/repos/o/r/issues/5/comments", {"per_page": ["100"], "page": ["2"]}, None),
        ("POST", "/repos/o/r/issues/5/comments", {}, {"body": "hello"}),
        ("PATCH", "/repos/o/r/issues/comments/77", {}, {"body": "edited"}),
        ("POST", "/repos/o/r/issues/5/labels", {}, {"labels": ["agent ready"]}),
        ("DELETE", "/repos/o/r/issues/5/labels/agent%20ready", {}, None),
        ("GET", "/repos/o/r/contents/.github/agent-dispatch.yml", {"ref": ["main"]}, None),
        ("GET", "/repos/o/r/collaborators/bob/permission", {}, None),
        ("GET", "/search/issues", {"q": ["repo:o/r is:issue crash"], "per_page": ["30"]}, None),
        ("GET", "/app/hook/deliveries", {"per_page": ["100"], "cursor": ["v1_9"]}, None),
        ("POST", "/app/hook/deliveries/12/attempts", {}, None),
        ("POST", "/app/installations/1/access_tokens", {}, None),
        ("POST", "/app-manifests/abc123/conversions", {}, None),
        ("POST", "/graphql", {}, {"query": "{ viewer { login } }"}),
        ("POST", "/api/graphql", {}, {"query": "{ x }", "variables": {"a": 1}}),
    ],
)
def test_valid_requests_pass(method: str, path: str, query: dict, body: Any) -> None:
    assert load_spec().violations(method, path, query, body) == []


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "problem"),
    [
        ("GET", "/repos/o/r/isues/5", {}, None, "no such path"),
        ("PUT", "/repos/o/r/issues/5", {}, None, "method PUT not allowed"),
        ("GET", "/repos/o/r/issues/five", {}, None, "issue_number='five' is not a valid integer"),
        (
            "GET",
            "/repos/o/r/issues/5/comments",
            {"perpage": ["10"]},
            None,
            "unknown query parameter perpage",
        ),
        ("GET", "/repos/o/r/issues/5/comments", {"per_page": ["lots"]}, None, "per_page='lots'"),
        ("GET", "/search/issues", {"per_page": ["10"]}, None, "missing required query parameter q"),
        ("GET", "/search/issues", {"q": ["x"], "sort": ["random"]}, None, "sort='random'"),
        (
            "POST",
            "/repos/o/r/issues/5/comments",
            {},
            {"text": "hi"},
            "'body' is a required property",
        ),
        ("POST", "/repos/o/r/issues/5/comments", {}, None, "a JSON body is required"),
        ("POST", "/repos/o/r/issues/5/labels", {}, {"labels": []}, "body at"),
        ("PATCH", "/repos/o/r/issues/comments/77", {}, {"body": 42}, "body at"),
        ("DELETE", "/repos/o/r/issues/5/labels/bug", {}, {"x": 1}, "takes no request body"),
        ("GET", "/graphql", {}, None, "GraphQL requests must be POST"),
        ("POST", "/graphql", {}, {"variables": {}}, "`query` string"),
    ],
)
def test_mistakes_are_named(method: str, path: str, query: dict, body: Any, problem: str) -> None:
    violations = load_spec().violations(method, path, query, body)
    assert len(violations) == 1
    assert problem in violations[0]


@pytest.fixture
def raw_fake(fake_github_server: FakeGitHub) -> Iterator[FakeGitHub]:
    """The fake without the conformance teardown: this test makes a bad request on purpose."""
    fake_github_server.reset()
    yield fake_github_server
    fake_github_server.reset()


async def test_a_wrong_request_to_the_fake_is_caught(raw_fake: FakeGitHub) -> None:
    raw_fake.add_issue("o/r", 1)
    async with aiohttp.ClientSession() as session:
        url = f"{raw_fake.url}/repos/o/r/issues/1/comments"
        async with session.post(url, json={"comment": "misspelt field"}) as response:
            assert response.status == 422  # the fake refuses it too
        async with session.get(url, params={"per_page": "100"}) as response:
            assert response.status == 200
    violations = load_spec().check(raw_fake.requests)
    assert violations == [
        "POST /repos/o/r/issues/1/comments (/repos/{owner}/{repo}/issues/{issue_number}/comments):"
        " body at (root): 'body' is a required property"
    ]
    # What the fake_github fixture does after each test with these requests:
    with pytest.raises(pytest.fail.Exception, match="'body' is a required property"):
        assert_conformance(raw_fake.requests)
