"""Templates from repository config cannot take the shared service's memory or CPU
(issue 14, item 12), nor can outsiders' comments outgrow the prompt (item 9)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from bot.config.repo import RepoConfig
from bot.models import Comment, Issue
from bot.triage.pipeline import FixedView, assess
from bot.triage.render import PromptTemplateError, Renderer
from bot.triage.sandbox import MAX_RENDER_SECONDS

# Before the limits, the first took 3.7 s and 1.2 GB; the others did not end.
HOSTILE_TEMPLATES = [
    "{{ 'x' * 300000000 }}",
    "{{ ['x'] * 300000000 }}",
    "{{ 10 ** 100000000 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
]


@pytest.mark.parametrize("template", HOSTILE_TEMPLATES)
def test_hostile_config_template_fails_fast(template: str) -> None:
    renderer = Renderer()
    start = time.monotonic()
    with pytest.raises(PromptTemplateError):
        renderer.config_line(template, repo="o/r", number=1)
    assert time.monotonic() - start < MAX_RENDER_SECONDS + 2  # generous: a shared machine


def test_ordinary_templates_still_render() -> None:
    renderer = Renderer()
    assert renderer.config_line(
        "cd {{ repo }} && pytest -k {{ number }}", repo="o/r", number=4
    ) == ("cd o/r && pytest -k 4")
    assert renderer.config_line("{{ '-' * 20 }}{% for i in range(3) %}{{ i }}{% endfor %}") == (
        "-" * 20 + "012"
    )


def test_outsiders_comments_are_cut_to_fit_the_prompt_budget() -> None:
    """100 comments of 64 KB made a 6.3 MB prompt against a 60 KB budget (item 9)."""
    when = datetime(2026, 1, 2, tzinfo=UTC)
    issue = Issue(
        repo="o/r",
        number=7,
        title="Crash when loading a checkpoint",
        body="Loading a checkpoint raises KeyError in peft/utils/save_and_load.py.",
        author="reporter",
        created_at=when,
        comments=[
            Comment(author=f"user{i}", body=f"comment {i} " + "x" * 64_000, created_at=when)
            for i in range(100)
        ],
    )
    config = RepoConfig()
    assessment = assess(issue, FixedView(), config, "agent-dispatch[bot]")
    rendered = Renderer().prompt(assessment.prompt)
    assert len(rendered.text) <= config.prompt.size_budget
    assert "comment 99" in rendered.text  # the latest comments are kept
    assert any(t.startswith("comments on #7 cut to") for t in rendered.trimmed)
