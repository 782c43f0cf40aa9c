"""Per-repository configuration: `.github/agent-dispatch.yml`, validated by pydantic.

Unknown keys are refused so that a typo is reported instead of silently ignored.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.config.triage import TriageRules

CONFIG_PATH = ".github/agent-dispatch.yml"

DEFAULT_LAUNCH_COMMAND = (
    "curl -fsSL '{{ url }}' -o issue-{{ number }}.md && "
    'claude "Please read issue-{{ number }}.md and follow the instructions."'
)

Permission = Literal["read", "triage", "write", "maintain", "admin"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelConfig(_Section):
    trigger: str = "agent-ready"
    dispatch: str = "dispatch"
    # Triage every newly opened issue, not only labelled ones.
    triage_on_open: bool = False
    # Label the issue with its verdict (off by default); verdict -> label name.
    apply_verdict_labels: bool = False
    verdict_labels: dict[str, str] = Field(
        default_factory=lambda: {
            "actionable": "agent: actionable",
            "needs-info": "agent: needs-info",
            "needs-hardware": "agent: needs-hardware",
            "needs-decision": "agent: needs-decision",
            "question": "agent: question",
            "duplicate": "agent: duplicate",
            "close-candidate": "agent: close-candidate",
        }
    )


class DispatchConfig(_Section):
    required_permission: Permission = "maintain"
    allowed_users: list[str] = Field(default_factory=list)
    allowed_teams: list[str] = Field(default_factory=list)
    max_in_flight: int = Field(default=3, ge=1)
    # Dispatch labels applied within this many seconds form one batch (0: each goes alone).
    batch_window_seconds: int = Field(default=10, ge=0, le=300)


# The coordinator's completion workflow. Each step is a sandboxed jinja2 template with
# `number`, `repo`, `branch`, `test_command`, `closing` ("Fixes #N", or "Refs #N" when the
# agent reviews a PR or verifies a fix) and `commit_message`.
DEFAULT_COMPLETION = [
    "**Run only the tests relevant to your change.** Do NOT run the full test suite: it is"
    " slow and will be run separately later. Run the specific test file(s) that cover the"
    " code you changed:\n\n    {{ test_command }}\n\nIf you wrote a new test, run that plus"
    " the existing tests in the same file to check for regressions in that area.",
    "**Commit** your changes with a message referencing the issue:\n\n    git add <files>\n"
    '    git commit -m "{{ commit_message }} (#{{ number }})"',
    "**Push** the branch:\n\n    git push -u origin {{ branch }}",
    "**Create a pull request** with `gh pr create`. The PR body must include"
    ' "{{ closing }}" so GitHub links it to the issue. Describe what the change does and'
    " how you verified it.",
]
_SECRET = re.compile(
    r"(?:xox[abposr]-|gh[pousr]_|github_pat_|sk-[A-Za-z0-9]{16}|AKIA[0-9A-Z]{12}|"
    r"-----BEGIN|[Bb]earer\s+[A-Za-z0-9._-]{16}|hooks\.slack\.com/services/)"
)


class PromptConfig(_Section):
    size_budget: int = Field(default=60_000, ge=5_000)
    # Commands before the install step (worktree, cd), in the order a person types them.
    setup: list[str] = Field(
        default_factory=lambda: [
            "git worktree add ../issue-{{ number }} -b {{ branch }}",
            "cd ../issue-{{ number }}",
        ]
    )
    branch: str = "fix/issue-{{ number }}"
    # None: detected from the repository (pyproject extras, a Makefile target).
    install: str | None = None
    # Where the repository's build and test instructions are; None: found in the tree
    # (CONTRIBUTING.md, docs/*test*).
    build_docs: str | None = None
    # Empty: the test files covering the pointed code, found from the tree.
    test_commands: list[str] = Field(default_factory=list)
    # Shown only as the labelled fallback when no covering test file is known.
    full_suite: str = "pytest -q"
    completion_workflow: list[str] = Field(default_factory=lambda: list(DEFAULT_COMPLETION))
    # An optional last step: a command to run or a message to post (never a secret).
    notify: str | None = None
    launch_command: str = DEFAULT_LAUNCH_COMMAND
    # Section name -> jinja2 template text that replaces the built-in section.
    overrides: dict[str, str] = Field(default_factory=dict)

    @field_validator("notify", "install", "build_docs", "launch_command")
    @classmethod
    def _no_secret(cls, value: str | None) -> str | None:
        if value is not None and _SECRET.search(value):
            raise ValueError(
                "looks like it holds a secret; this file is public, never put one here"
            )
        return value

    @field_validator("setup", "completion_workflow", "test_commands")
    @classmethod
    def _no_secret_lines(cls, value: list[str]) -> list[str]:
        for line in value:
            cls._no_secret(line)
        return value


class SlackConfig(_Section):
    channel: str | None = None
    # A digest of the top dispatch candidates (bot/dashboard/digest.py): off by default.
    digest: Literal["off", "daily", "weekly"] = "off"
    digest_size: int = Field(default=5, ge=1, le=20)
    # The UTC hour from which the period's digest goes out (weekly: on Monday).
    digest_hour: int = Field(default=9, ge=0, le=23)


class RepoConfig(_Section):
    labels: LabelConfig = Field(default_factory=LabelConfig)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    triage: TriageRules = Field(default_factory=TriageRules)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
