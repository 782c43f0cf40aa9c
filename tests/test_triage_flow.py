"""Triage end to end: a signed `agent-ready` delivery, the fake GitHub, one living comment."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient

from bot.store.artifacts import ArtifactStore
from bot.web.app import SERVICES
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import REPO, labeled, real_issue, seed, send, settled


def bot_comments(fake: FakeGitHub, number: int) -> list[dict[str, Any]]:
    return [c for c in fake.comments_of(REPO, number) if c["user"]["type"] == "Bot"]


async def test_agent_ready_label_gives_one_comment_whose_link_downloads_the_prompt(
    app_client: TestClient, fake_github: FakeGitHub
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    status, _, delivery = await send(
        app_client, "issues", labeled(number), secret=fake_github.webhook_secret
    )
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


async def test_second_and_third_deliveries_edit_the_comment_instead_of_adding_one(
    app_client: TestClient, fake_github: FakeGitHub
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    db = app_client.app[SERVICES].settings.db
    for _ in range(2):
        _, _, delivery = await send(
            app_client, "issues", labeled(number), secret=fake_github.webhook_secret
        )
        await settled(db, [delivery])
    assert len(bot_comments(fake_github, number)) == 1
    assert not fake_github.requests_to("PATCH", "/comments/"), "same text: no PATCH"

    fake_github.add_comment(
        REPO,
        number,
        "Still fails on main with `RuntimeError: size mismatch` in peft/tuners/lora.py",
        user="someone",
    )
    _, _, delivery = await send(
        app_client, "issues", labeled(number), secret=fake_github.webhook_secret
    )
    await settled(db, [delivery])
    assert len(bot_comments(fake_github, number)) == 1
    assert len(fake_github.requests_to("POST", f"/issues/{number}/comments")) == 1
    assert len(fake_github.requests_to("PATCH", "/comments/")) == 1
    versions = await app_client.app[SERVICES].artifacts.call(ArtifactStore.list, REPO, number)
    assert [v.version for v in versions] == [2, 1]  # the old prompt is kept


async def test_labels_from_bots_and_other_labels_trigger_nothing(
    app_client: TestClient, fake_github: FakeGitHub
) -> None:
    number = seed(fake_github, real_issue("peft.export.json", 436))
    db = app_client.app[SERVICES].settings.db
    ids = [
        (
            await send(
                app_client,
                "issues",
                labeled(number, sender_type="Bot"),
                secret=fake_github.webhook_secret,
            )
        )[2],
        (
            await send(
                app_client,
                "issues",
                labeled(number, label="bug"),
                secret=fake_github.webhook_secret,
            )
        )[2],
    ]
    await settled(db, ids)
    assert bot_comments(fake_github, number) == []
