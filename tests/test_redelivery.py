"""Redelivery catch-up: only failed deliveries our inbox lacks, once per guid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.github import GitHubFactory
from bot.github.redelivery import catch_up, failed_deliveries
from tests.fakegithub import FakeGitHub

NOW = datetime.now(UTC).replace(microsecond=0)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def attempt(id_: int, guid: str, status_code: int | None, minutes_ago: float) -> dict:
    return {
        "id": id_,
        "guid": guid,
        "status_code": status_code,
        "delivered_at": ago(minutes_ago).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        ([attempt(1, "a", 500, 5)], {"a": 1}),
        ([attempt(1, "a", 200, 5)], {}),
        ([attempt(1, "a", 302, 5)], {}),
        ([attempt(1, "a", 0, 5)], {"a": 1}),  # could not connect
        ([attempt(1, "a", None, 5)], {"a": 1}),
        ([attempt(1, "a", 404, 5)], {"a": 1}),
        # several failed attempts: one entry, the newest attempt
        ([attempt(3, "a", 502, 1), attempt(2, "a", 502, 3), attempt(1, "a", 502, 9)], {"a": 3}),
        # a later redelivery succeeded: nothing to do
        ([attempt(2, "a", 200, 1), attempt(1, "a", 502, 9)], {}),
        (
            [attempt(2, "b", 503, 1), attempt(1, "a", 500, 2)],
            {"a": 1, "b": 2},
        ),
    ],
)
def test_failed_deliveries(attempts: list[dict], expected: dict[str, int]) -> None:
    assert failed_deliveries(attempts) == expected


async def test_catch_up_asks_only_for_what_the_inbox_lacks(
    fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    inbox = {"in-inbox"}
    # 150 delivered events: the listing takes two pages.
    for i in range(150):
        fake_github.add_delivery(f"ok-{i}", status_code=200, delivered_at=ago(30 + i / 100))
    twice = [
        fake_github.add_delivery("failed-twice", status_code=502, delivered_at=ago(20)),
        fake_github.add_delivery("failed-twice", status_code=502, delivered_at=ago(10)),
    ]
    unreachable = fake_github.add_delivery("unreachable", status_code=0, delivered_at=ago(15))
    fake_github.add_delivery("in-inbox", status_code=500, delivered_at=ago(12))
    fake_github.add_delivery("recovered", status_code=500, delivered_at=ago(14))
    fake_github.add_delivery("recovered", status_code=200, redelivery=True, delivered_at=ago(13))
    fake_github.add_delivery("too-old", status_code=500, delivered_at=ago(24 * 60))

    asked_about: list[list[str]] = []

    def known(guids: list[str]) -> set[str]:
        asked_about.append(guids)
        return inbox & set(guids)

    app = github_factory.app_client()
    asked = await catch_up(app, known, since=ago(120))

    assert sorted(asked) == ["failed-twice", "unreachable"]
    assert asked_about == [["failed-twice", "in-inbox", "unreachable"]]
    assert sorted(fake_github.state.redelivery_requests) == sorted(
        [twice[1]["id"], unreachable["id"]]
    )
    listing = fake_github.requests_to("GET", "/app/hook/deliveries")
    assert len(listing) == 2
    assert {r.auth for r in fake_github.requests} == {"bearer"}


async def test_a_refused_redelivery_does_not_stop_the_others(
    fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.add_delivery("first", status_code=500, delivered_at=ago(2))
    fake_github.add_delivery("second", status_code=500, delivered_at=ago(1))
    fake_github.fail_next(1, status=422, path="/attempts")
    asked = await catch_up(github_factory.app_client(), lambda guids: set(), since=ago(60))
    assert len(asked) == 1
    assert len(fake_github.requests_to("POST", "/attempts")) == 2


async def test_nothing_failed_means_no_inbox_lookup(
    fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.add_delivery("fine", status_code=202, delivered_at=ago(1))

    def known(guids: list[str]) -> set[str]:
        raise AssertionError("no lookup expected")

    assert await catch_up(github_factory.app_client(), known, since=ago(60)) == []
