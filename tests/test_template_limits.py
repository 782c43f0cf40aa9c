"""Templates from repository config cannot take the shared service's memory or CPU
(issue 14, item 12)."""

from __future__ import annotations

import time

import pytest

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
