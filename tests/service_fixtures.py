"""Running the real service on loopback for tests: settings, signed deliveries, waiting."""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.config.settings import Settings
from bot.service import create_app
from bot.web.intake import signature_for
from tests.fakegithub import FakeGitHub
from tests.shared_data import data_file

WEBHOOK_SECRET = "test-webhook-secret-0123456789"
FIXTURES = Path(__file__).parent / "fixtures"


def example(name: str) -> dict[str, Any]:
    """A real payload from @octokit/webhooks-examples, e.g. example('issues.labeled')."""
    data: dict[str, Any] = json.loads((FIXTURES / "webhooks" / f"{name}.json").read_text())
    return data


REPO = "huggingface/peft"  # the real repository of the seeded issues (package-path signals)


def real_issue(name: str, number: int) -> dict[str, Any]:
    """One issue of ../shared/data in the coordinator format."""
    export = json.loads(data_file(name).read_text())
    return next(i for i in export["open_issues"] + export["closed_issues"] if i["number"] == number)


# A few real paths of huggingface/peft's default branch (the tree code pointers are checked on).
PEFT_PATHS = ("src/peft/__init__.py", "src/peft/tuners/__init__.py", "src/peft/tuners/lora.py")


def seed(fake: FakeGitHub, raw: dict[str, Any], repo: str = REPO) -> int:
    fake.add_repo(repo)
    if repo == REPO:
        for path in PEFT_PATHS:
            fake.set_file(repo, path, "")
    fake.add_issue(
        repo,
        raw["number"],
        title=raw["title"],
        body=raw["body"],
        user=raw["author"] or "ghost",
        labels=raw["labels"],
    )
    for c in raw["comments"]:
        fake.add_comment(repo, raw["number"], c["body"], user=c["author"] or "ghost")
    return int(raw["number"])


def labeled(
    number: int, label: str = "agent-ready", repo: str = REPO, sender_type: str = "User"
) -> dict[str, Any]:
    payload = copy.deepcopy(example("issues.labeled"))
    payload["repository"]["full_name"] = repo
    payload["issue"]["number"] = number
    payload["label"]["name"] = label
    payload["installation"] = {"id": 1, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="}
    payload["sender"]["type"] = sender_type
    return payload


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_secret": WEBHOOK_SECRET,
        "db": tmp_path / "bot.sqlite3",
        "workers": 2,
        "debounce_seconds": 0.0,
        "retry_base_seconds": 0.01,
        "redelivery_interval_minutes": 0,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


def signed(
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    delivery: str | None = None,
    secret: str = WEBHOOK_SECRET,
) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature_for(secret, body),
        "Content-Type": "application/json",
    }
    return body, headers


async def send(
    client: TestClient, event: str, payload: dict[str, Any] | bytes, **kw: Any
) -> tuple[int, dict[str, Any], str]:
    body, headers = signed(event, payload, **kw)
    response = await client.post("/webhook", data=body, headers=headers)
    return response.status, await response.json(), headers["X-GitHub-Delivery"]


def delivery_rows(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [
            dict(r)
            for r in conn.execute(
                "SELECT id, event, action, subject, status, attempts, completions, last_error FROM deliveries ORDER BY seq"
            )
        ]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


async def settled(db: Path, ids: list[str], *, timeout: float = 10.0) -> dict[str, dict[str, Any]]:
    """Wait until every delivery in `ids` is done, ignored or dead."""
    deadline = time.monotonic() + timeout
    while True:
        rows = {r["id"]: r for r in delivery_rows(db) if r["id"] in ids}
        if len(rows) == len(ids) and all(
            r["status"] in ("done", "ignored", "dead") for r in rows.values()
        ):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(
                f"deliveries not settled: {[r for r in rows.values() if r['status'] not in ('done', 'ignored', 'dead')]}"
            )
        await asyncio.sleep(0.02)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def bot_client(aiohttp_client: Any, settings: Settings) -> TestClient:
    app: web.Application = await create_app(settings)
    client: TestClient = await aiohttp_client(app)
    return client
