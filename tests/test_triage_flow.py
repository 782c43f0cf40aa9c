"""Triage end to end: a signed `agent-ready` delivery, the fake GitHub, one living comment."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from bot.service import create_app
from bot.web import SERVICES
from tests.conftest import FAST_RETRIES
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import example, send, settled

REPO = "huggingface/peft"  # the real repository of the seeded issues (package-path signals)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def real_issue(name: str, number: int) -> dict[str, Any]:
    """One issue of ../shared/data in the coordinator format."""
    export = json.loads((DATA / name).read_text())
    return next(i for i in export["open_issues"] + export["closed_issues"] if i["number"] == number)


def seed(fake: FakeGitHub, raw: dict[str, Any], repo: str = REPO) -> int:
    fake.add_repo(repo)
    fake.add_issue(repo, raw["number"], title=raw["title"], body=raw["body"], user=raw["author"] or "ghost", labels=raw["labels"])
    for c in raw["comments"]:
        fake.add_comment(repo, raw["number"], c["body"], user=c["author"] or "ghost")
    return int(raw["number"])


def labeled(number: int, label: str = "agent-ready", repo: str = REPO, sender_type: str = "User") -> dict[str, Any]:
    payload = copy.deepcopy(example("issues.labeled"))
    payload["repository"]["full_name"] = repo
    payload["issue"]["number"] = number
    payload["label"]["name"] = label
    payload["installation"] = {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
    payload["sender"]["type"] = sender_type
    return payload


@pytest.fixture
async def app_client(aiohttp_client: Any, fake_github: FakeGitHub, tmp_path: Path) -> AsyncIterator[TestClient]:
    settings = fake_github.settings(db=tmp_path / "bot.sqlite3", workers=2, debounce_seconds=0.0, retry_base_seconds=0.01)
    client: TestClient = await aiohttp_client(await create_app(settings, github_policy=FAST_RETRIES))
    yield client


def bot_comments(fake: FakeGitHub, number: int) -> list[dict[str, Any]]:
    return [c for c in fake.comments_of(REPO, number) if c["user"]["type"] == "Bot"]


async def test_agent_ready_label_gives_one_comment_whose_link_downloads_the_prompt(app_client: TestClient, fake_github: FakeGitHub) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    status, _, delivery = await send(app_client, "issues", labeled(number), secret=fake_github.webhook_secret)
    assert status == 202
    rows = await settled(app_client.app[SERVICES].settings.db, [delivery])
    assert rows[delivery]["status"] == "done", rows[delivery]["last_error"]

    comments = bot_comments(fake_github, number)
    assert len(comments) == 1
    body = comments[0]["body"]
    assert body.startswith("<!-- agent-dispatch:triage hash=")
    link = re.search(r"\]\((http[^)]+/artifacts/[^)]+)\)", body)
    assert link, body
    url = urlsplit(link.group(1))
    response = await app_client.get(f"{url.path}?{url.query}")
    assert response.status == 200
    prompt = await response.text()
    assert f"#{number}" in prompt and "## 9. Launch command" in prompt
    assert "merge_and_unload" in prompt  # the issue body is in the prompt, in full

    # A tampered or expired link says nothing about whether the artifact exists.
    assert (await app_client.get(f"{url.path}?{url.query.replace('sig=', 'sig=0')}")).status == 404
    assert (await app_client.get(url.path)).status == 404


async def test_second_and_third_deliveries_edit_the_comment_instead_of_adding_one(app_client: TestClient, fake_github: FakeGitHub) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    db = app_client.app[SERVICES].settings.db
    for _ in range(2):
        _, _, delivery = await send(app_client, "issues", labeled(number), secret=fake_github.webhook_secret)
        await settled(db, [delivery])
    assert len(bot_comments(fake_github, number)) == 1
    assert not fake_github.requests_to("PATCH", "/comments/"), "same text: no PATCH"

    fake_github.add_comment(REPO, number, "Still fails on main with `RuntimeError: size mismatch` in peft/tuners/lora.py", user="someone")
    _, _, delivery = await send(app_client, "issues", labeled(number), secret=fake_github.webhook_secret)
    await settled(db, [delivery])
    assert len(bot_comments(fake_github, number)) == 1
    assert len(fake_github.requests_to("POST", f"/issues/{number}/comments")) == 1
    assert len(fake_github.requests_to("PATCH", "/comments/")) == 1
    versions = app_client.app[SERVICES].artifacts.list(REPO, number)
    assert [v.version for v in versions] == [2, 1]  # the old prompt is kept


async def test_labels_from_bots_and_other_labels_trigger_nothing(app_client: TestClient, fake_github: FakeGitHub) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    db = app_client.app[SERVICES].settings.db
    ids = [
        (await send(app_client, "issues", labeled(number, sender_type="Bot"), secret=fake_github.webhook_secret))[2],
        (await send(app_client, "issues", labeled(number, label="bug"), secret=fake_github.webhook_secret))[2],
    ]
    await settled(db, ids)
    assert bot_comments(fake_github, number) == []
