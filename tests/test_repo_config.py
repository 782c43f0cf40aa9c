"""Repository configuration: merging org defaults, and every kind of broken file."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.config.loader import build_config
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import REPO, labeled, real_issue, seed, send, settled

REPO_FILE = "o/r:.github/agent-dispatch.yml"
ORG_FILE = "o/.github:.github/agent-dispatch.yml"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("labels: [unclosed", "not valid YAML at line 1"),
        (
            "labels:\n  trigger: x\n  trigerr: y\n",
            "`labels.trigerr`: Extra inputs are not permitted",
        ),
        (
            "triage:\n  threshold: 7\n",
            "`triage.threshold`: Input should be less than or equal to 1",
        ),
        (
            "dispatch:\n  max_in_flight: lots\n",
            "`dispatch.max_in_flight`: Input should be a valid integer",
        ),
        ("- just\n- a list\n", "the top level must be a mapping, not list"),
        ("prompt:\n  size_budget: 10\n", "`prompt.size_budget`"),
        ("x: " + "y" * 300_000, "larger than"),
    ],
)
def test_a_broken_file_keeps_the_defaults_and_names_the_problem(text: str, problem: str) -> None:
    loaded = build_config(None, (REPO_FILE, text))
    assert loaded.config.labels.trigger == "agent-ready"
    assert (
        len(loaded.errors) == 1
        and problem in loaded.errors[0]
        and loaded.errors[0].startswith(REPO_FILE)
    )


@pytest.mark.parametrize(
    ("org", "repo", "trigger", "dispatch", "threshold"),
    [
        (None, "", "agent-ready", "dispatch", 0.5),  # empty file: defaults
        (None, "labels:\n  trigger: ai\n", "ai", "dispatch", 0.5),
        (
            "labels:\n  dispatch: ship\ntriage:\n  threshold: 0.7\n",
            "labels:\n  trigger: ai\n",
            "ai",
            "ship",
            0.7,
        ),
        (
            "labels:\n  trigger: org-label\n",
            "labels:\n  trigger: repo-label\n",
            "repo-label",
            "dispatch",
            0.5,
        ),
        (
            "labels: [broken",
            "triage:\n  threshold: 0.6\n",
            "agent-ready",
            "dispatch",
            0.6,
        ),  # a bad org layer is dropped
    ],
)
def test_org_defaults_merge_under_the_repository_file(
    org: str | None, repo: str, trigger: str, dispatch: str, threshold: float
) -> None:
    loaded = build_config((ORG_FILE, org) if org is not None else None, (REPO_FILE, repo))
    assert (
        loaded.config.labels.trigger,
        loaded.config.labels.dispatch,
        loaded.config.triage.threshold,
    ) == (trigger, dispatch, threshold)


async def test_a_broken_config_gives_one_warning_in_the_triage_comment(
    app_client: TestClient, fake_github: FakeGitHub, services_db: Any
) -> None:
    fake_github.set_file(REPO, ".github/agent-dispatch.yml", "triage:\n  threshold: 7\n")
    number = seed(fake_github, real_issue("peft.export.json", 436))
    for _ in range(2):
        _, _, delivery = await send(
            app_client, "issues", labeled(number), secret=fake_github.webhook_secret
        )
        await settled(services_db, [delivery])
    comments = [
        c["body"] for c in fake_github.comments_of(REPO, number) if c["user"]["type"] == "Bot"
    ]
    assert len(comments) == 1
    assert comments[0].count("`triage.threshold`: Input should be less than or equal to 1") == 1
    assert "actionable" in comments[0].splitlines()[1]  # the defaults still decided
