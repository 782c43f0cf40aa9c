"""Config examples in docs/ survive copy-paste, and a workflow that lost its `#N` is refused.

Every YAML block in docs/ is loaded; the ones that are `.github/agent-dispatch.yml`
examples are validated as a repository would load them and rendered into a prompt.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot.config.loader import build_config
from bot.config.repo import RepoConfig
from bot.models import Comment, Issue
from bot.store.artifacts import ArtifactRef
from bot.triage.comment import comment_context
from bot.triage.pipeline import FixedView, assess
from bot.triage.render import Renderer

DOCS = Path(__file__).resolve().parents[1] / "docs"
YAML_BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.M | re.S)
CONFIG_KEYS = set(RepoConfig.model_fields)


def examples() -> list[tuple[str, str]]:
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        for index, match in enumerate(YAML_BLOCK.finditer(path.read_text())):
            found.append((f"{path.relative_to(DOCS)}#{index + 1}", match.group(1)))
    return found


EXAMPLES = examples()


def sample_issue() -> Issue:
    return Issue(
        repo="octo/widgets",
        number=42,
        title="Crash in widgets/core.py when width is 0",
        body='```\nTraceback (most recent call last):\n  File "widgets/core.py", line 3\n'
        "ZeroDivisionError: division by zero\n```",
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        comments=[Comment(author="alice", body="Confirmed.", created_at=datetime(2026, 1, 3))],
    )


def render(config: RepoConfig) -> tuple[str, list[str]]:
    assessment = assess(sample_issue(), FixedView(), config, None)
    rendered = Renderer().prompt(assessment.prompt)
    return rendered.text, rendered.override_errors


def test_the_docs_have_config_examples() -> None:
    assert any(set(yaml.safe_load(text) or {}) <= CONFIG_KEYS for _, text in EXAMPLES)


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_yaml_example_loads_and_config_examples_render(where: str, text: str) -> None:
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not set(data) <= CONFIG_KEYS:
        return  # not a repository config (deployment manifests and the like)
    loaded = build_config(None, (f"docs/{where}", text))
    assert loaded.errors == ()
    prompt, errors = render(loaded.config)
    assert errors == []
    assert "#42" in prompt.split("## 7.")[1].split("## 8.")[0]


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_no_unquoted_value_is_cut_at_a_hash(where: str, text: str) -> None:
    """A comment in the docs has two spaces before `#`; one space means a cut value."""
    for line in text.splitlines():
        unquoted = re.sub(r"\"[^\"]*\"|'[^']*'", '""', line)
        assert not re.search(r"\S #", unquoted), f"{where}: YAML cuts this value at ' #': {line}"


@pytest.mark.parametrize(
    "step",
    [
        "Open a pull request whose body says `Fixes",  # the docs' old example, cut by YAML
        "Open a pull request that references",
        "Commit and push.",  # no step names the issue at all
    ],
)
def test_a_workflow_that_lost_its_number_is_refused_with_a_warning(step: str) -> None:
    text = f"prompt:\n  completion_workflow:\n    - Run the tests.\n    - {step}\n"
    loaded = build_config(None, ("octo/widgets:.github/agent-dispatch.yml", text))
    assert loaded.errors == ()
    prompt, errors = render(loaded.config)
    assert len(errors) == 1 and errors[0].startswith("prompt.completion_workflow:")
    assert "quote the value" in errors[0]
    assert step not in prompt and '"Fixes #42"' in prompt  # the built-in workflow instead
    comment = Renderer().comment(
        comment_context(
            assess(sample_issue(), FixedView(), loaded.config, None).decision,
            loaded.config,
            errors=errors,
            artifact=ArtifactRef(
                repo="octo/widgets", number=42, version=1, sha256="0" * 64, size=1, created_at=0
            ),
            artifact_url="https://bot.example.org/a",
            expires=0,
            followups=[],
        )
    )
    assert "prompt.completion_workflow" in comment


def test_the_yaml_cut_is_real() -> None:
    cut = yaml.safe_load("- Open a pull request whose body says `Fixes #{{ number }}`.")
    assert cut == ["Open a pull request whose body says `Fixes"]


def test_a_secret_in_the_notify_step_is_refused() -> None:
    loaded = build_config(
        None, ("r", "prompt:\n  notify: \"curl -H 'Authorization: Bearer xoxb-1234567890-abc'\"\n")
    )
    assert loaded.errors and "prompt.notify" in loaded.errors[0]
    assert loaded.config.prompt.notify is None


def test_notify_step_is_last_and_optional() -> None:
    config = RepoConfig.model_validate({"prompt": {"notify": "Post the PR link in #agents"}})
    prompt, errors = render(config)
    done = prompt.split("## 7.")[1].split("## 8.")[0]
    assert errors == [] and "5. **Notify** the team" in done and "Post the PR link" in done
    assert "**Notify**" not in render(RepoConfig())[0]
