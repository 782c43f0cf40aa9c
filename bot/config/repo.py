"""Per-repository configuration: `.github/agent-dispatch.yml`, validated by pydantic.

Unknown keys are refused so that a typo is reported instead of silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class PromptConfig(_Section):
    size_budget: int = Field(default=60_000, ge=5_000)
    setup: list[str] = Field(
        default_factory=lambda: [
            "git worktree add ../issue-{{ number }} -b fix/issue-{{ number }}",
            "pip install -e '.[dev]'",
        ]
    )
    test_commands: list[str] = Field(default_factory=lambda: ["pytest -x -q"])
    completion_workflow: list[str] = Field(
        default_factory=lambda: [
            "Run the tests named above and make sure they pass.",
            "Commit with a message that references #{{ number }}.",
            "Open a pull request whose body says `Fixes #{{ number }}`.",
        ]
    )
    launch_command: str = DEFAULT_LAUNCH_COMMAND
    # Section name -> jinja2 template text that replaces the built-in section.
    overrides: dict[str, str] = Field(default_factory=dict)


class SlackConfig(_Section):
    channel: str | None = None


class RepoConfig(_Section):
    labels: LabelConfig = Field(default_factory=LabelConfig)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    triage: TriageRules = Field(default_factory=TriageRules)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
