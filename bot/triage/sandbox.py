"""The sandbox for templates from repository config: bounded output and render time.

Whoever can push `.github/agent-dispatch.yml` writes these templates, and they render in
the shared service, so `{{ 'x' * 300000000 }}` or a loop of a million iterations must
fail fast instead of taking memory and CPU from every other repository. A template
that breaks a limit raises `SecurityError` (a `TemplateError`): the caller falls back to
the default template, as for any broken override.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import Template
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_OUTPUT_CHARS = 200_000
MAX_RENDER_SECONDS = 0.5
# `range` in jinja's sandbox stops at 100,000 items; nested loops multiply, so every
# iteration of a range counts against the render's deadline too.
_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("sandbox_deadline")


def _check_time() -> None:
    deadline = _deadline.get(None)
    if deadline is not None and time.monotonic() > deadline:
        raise SecurityError(f"template took longer than {MAX_RENDER_SECONDS:g} s")


def _timed_range(*args: int) -> Iterator[int]:
    values = range(*args)
    if len(values) > MAX_OUTPUT_CHARS:
        raise SecurityError(f"range of more than {MAX_OUTPUT_CHARS} items")
    for value in values:
        _check_time()
        yield value


def _too_big(left: Any, right: Any) -> bool:
    """`'x' * n` or `[...] * n` whose result would pass the output limit."""
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(count, int):
            return len(seq) * max(count, 0) > MAX_OUTPUT_CHARS
    return False


class LimitedSandbox(SandboxedEnvironment):
    """jinja2's sandbox with limits on sizes, powers and time."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.globals["range"] = _timed_range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        if operator == "*" and _too_big(left, right):
            raise SecurityError(f"a repeated value longer than {MAX_OUTPUT_CHARS} characters")
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("exponent larger than 64")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _check_time()
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        return super().getattr(obj, attribute)


def render_limited(template: Template, values: Mapping[str, Any]) -> str:
    """Render within MAX_OUTPUT_CHARS and MAX_RENDER_SECONDS, or raise SecurityError."""
    token = _deadline.set(time.monotonic() + MAX_RENDER_SECONDS)
    try:
        parts: list[str] = []
        size = 0
        for part in template.generate(**values):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise SecurityError(f"template output longer than {MAX_OUTPUT_CHARS} characters")
            _check_time()
            parts.append(part)
        return "".join(parts)
    finally:
        _deadline.reset(token)
