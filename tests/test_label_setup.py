"""Labels exist from the start: installing the App creates the configured labels a
repository lacks, and never renames or recolours one a maintainer already has (issue 18)."""

from __future__ import annotations

import copy
from pathlib import Path

from aiohttp.test_utils import TestClient

from bot.config.repo import LabelConfig
from bot.delivery.housekeeping import wanted_labels
from bot.github.client import GitHubFactory
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import example, send, settled

OTHER = "huggingface/transformers"


def _installed(event: str, repos: list[str]) -> dict[str, object]:
    payload = copy.deepcopy(example(event))
    key = "repositories" if event == "installation.created" else "repositories_added"
    payload[key] = [{"id": i, "full_name": r, "name": r.split("/")[1]} for i, r in enumerate(repos)]
    payload["installation"]["id"] = 1
    return payload


async def test_installing_creates_missing_labels_and_keeps_the_maintainers(
    app_client: TestClient, fake_github: FakeGitHub, services_db: Path
) -> None:
    state = fake_github.add_repo("huggingface/peft")
    fake_github.add_repo(OTHER)
    ours = {"name": "Dispatch", "color": "ff0000", "description": "the maintainers' own"}
    state.labels["Dispatch"] = {"id": 1, "default": False, **ours}
    fake_github.set_file(
        OTHER, ".github/agent-dispatch.yml", "labels:\n  apply_verdict_labels: true\n"
    )

    _, _, first = await send(
        app_client,
        "installation",
        _installed("installation.created", ["huggingface/peft"]),
        secret=fake_github.webhook_secret,
    )
    _, _, second = await send(
        app_client,
        "installation_repositories",
        _installed("installation_repositories.added", [OTHER]),
        secret=fake_github.webhook_secret,
    )
    rows = await settled(services_db, [first, second])
    assert {r["status"] for r in rows.values()} == {"done"}

    peft = fake_github.state.repos["huggingface/peft"].labels
    assert set(peft) == {"Dispatch", "agent-ready"}  # no verdict labels unless enabled
    assert {k: peft["Dispatch"][k] for k in ours} == ours  # not renamed, not recoloured
    assert peft["agent-ready"]["color"] == "1d76db" and peft["agent-ready"]["description"]

    other = fake_github.state.repos[OTHER].labels
    assert set(other) == {s.name for s in wanted_labels(LabelConfig(apply_verdict_labels=True))}
    assert all(lb["description"] and len(lb["color"]) == 6 for lb in other.values())


async def test_a_label_made_meanwhile_is_no_error(
    fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.add_repo("huggingface/peft")
    gh = await github_factory.for_installation(1)
    assert await gh.get_label("huggingface/peft", "agent-ready") is None
    assert await gh.create_label("huggingface/peft", "agent-ready", "1d76db", "d") is True
    assert await gh.create_label("huggingface/peft", "Agent-Ready", "000000", "x") is False
    got = await gh.get_label("huggingface/peft", "AGENT-READY")
    assert got is not None and got["color"] == "1d76db"


def test_wanted_labels_follow_the_config_once_each() -> None:
    names = [s.name for s in wanted_labels(LabelConfig(trigger="Dispatch", dispatch="dispatch"))]
    assert names == ["Dispatch"]
    verdicts = wanted_labels(LabelConfig(apply_verdict_labels=True))
    assert len(verdicts) == 9 and all(len(s.description) <= 100 for s in verdicts)
