"""Configurable rules for the actionability engine (the `triage:` section of the repo config).

Defaults suit Python ML repositories; every list and weight can be replaced per repository.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Weight of each signal the engine can emit. Positive weights are evidence that an agent can
# fix the issue alone; negative ones are evidence against. `weights` in the config overrides
# single entries; the score is the clamped sum of the weights of the signals found.
DEFAULT_WEIGHTS: dict[str, float] = {
    # what the reporter gave
    "traceback": 0.25,
    "error_message": 0.15,
    "wrong_result": 0.15,
    "reproduction": 0.2,
    "code_pointer": 0.2,
    "title_names_code": 0.15,
    "code_identifier": 0.05,
    "versions": 0.1,
    "scoped_ask": 0.15,
    "fix_proposed": 0.15,
    # what maintainers said or did
    "maintainer_authored": 0.2,
    "maintainer_confirms": 0.3,
    "maintainer_invites_pr": 0.35,
    "maintainer_points_to_code": 0.15,
    "contributions_welcome_label": 0.35,
    "open_pr": 0.1,
    # evidence against
    "no_description": -0.4,
    "screenshot_only_error": -0.3,
    "vague_title": -0.1,
    "question": -0.3,
    "design_ask": -0.3,
    "design_discussion": -0.3,
    "many_prs": -0.2,
    "decision_label": -0.3,
    "info_requested": -0.3,
    "waiting_for_info_label": -0.3,
    "cannot_reproduce": -0.3,
    "hardware_required": -0.3,
    "reporter_resolved": -0.5,
    "fixed_claim": -0.5,
    "maintainer_closing": -0.5,
    "out_of_scope": -0.5,
    "not_a_bug": -0.5,
    "workaround_suggested": -0.15,
    "merged_pr": -0.5,
    "close_label": -0.5,
    "duplicate": -0.5,
}


class TriageLabels(BaseModel):
    """Label names per role; matched case-insensitively, ignoring '-', '_' and ':'."""

    model_config = ConfigDict(extra="forbid")

    contributions_welcome: list[str] = Field(
        default_factory=lambda: [
            "Contributions Welcome",
            "good first issue",
            "help wanted",
            "PR welcome",
        ]
    )
    question: list[str] = Field(default_factory=lambda: ["Question", "usage", "how-to"])
    duplicate: list[str] = Field(default_factory=lambda: ["Duplicate"])
    waiting_for_info: list[str] = Field(
        default_factory=lambda: [
            "Waiting for Info",
            "needs info",
            "needs more info",
            "more info needed",
            "needs reproduction",
            "awaiting response",
            "waiting for response",
        ]
    )
    close: list[str] = Field(
        default_factory=lambda: ["Proposing to Close", "wontfix", "won't fix", "invalid", "spam"]
    )
    needs_decision: list[str] = Field(
        default_factory=lambda: [
            "Needs Input",
            "To Discuss",
            "To Discuss Internally",
            "RFC",
            "needs decision",
            "needs discussion",
            "discussion",
        ]
    )
    feature: list[str] = Field(
        default_factory=lambda: ["Feature request", "feature", "enhancement", "new feature"]
    )
    documentation: list[str] = Field(default_factory=lambda: ["documentation", "docs"])


def _default_hardware_keywords() -> dict[str, list[str]]:
    # Plain phrases, case-insensitive, matched as whole words; '#' stands for a number with an
    # optional short suffix (gfx942, MI300X, M2), a space also matches '-', '_' or nothing.
    return {
        "rocm": [
            "rocm",
            "hip",
            "hipcc",
            "amd gpu",
            "amd gpus",
            "amd instinct",
            "radeon",
            "mi#",
            "gfx#",
            "aiter",
            "miopen",
            "rccl",
        ],
        "ascend": ["ascend", "npu", "npus", "torch_npu", "cann"],
        "xpu": [
            "xpu",
            "intel arc",
            "intel gpu",
            "intel gpus",
            "gaudi",
            "gaudi#",
            "hpu",
            "habana",
            "ipex",
        ],
        "mps": ["mps", "apple silicon", "apple m#", "m# pro", "m# max", "m# ultra", "apple metal"],
        "jetson": ["jetson", "aarch64", "arm64", "orin", "xavier", "gh200", "grace hopper"],
        "windows": ["windows", "win10", "win11", "wsl", "wsl2"],
        "tpu": ["tpu", "tpus", "torch_xla"],
        "multi-gpu": [
            "multi gpu",
            "multigpu",
            "multiple gpus",
            "multi node",
            "multinode",
            "fsdp",
            "fsdp#",
            "fully sharded",
            "deepspeed",
            "zero 2",
            "zero 3",
            "zero stage",
            "nccl",
            "ddp",
            "distributeddataparallel",
            "distributed data parallel",
            "data parallel",
            "torchrun",
            "world size",
            "megatron",
            "tensor parallel",
            "tensor parallelism",
            "pipeline parallel",
            "pipeline parallelism",
            "sequence parallel",
            "context parallel",
            "model parallel",
            "expert parallel",
        ],
    }


class TriageRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Hardware the repository's agents have (e.g. ["cuda"]); anything else needs a human.
    available_hardware: list[str] = Field(default_factory=lambda: ["cpu", "cuda"])
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Overrides of DEFAULT_WEIGHTS by signal name; unknown names are refused.
    weights: dict[str, float] = Field(default_factory=dict)
    # Logins whose comments count as a maintainer's, besides author_association below.
    maintainers: list[str] = Field(default_factory=list)
    maintainer_associations: list[str] = Field(
        default_factory=lambda: ["OWNER", "MEMBER", "COLLABORATOR"]
    )
    # Comments whose author_association is unknown (exports often lack it) count this much of
    # a maintainer's; they never decide a verdict on their own.
    unknown_commenter_trust: float = Field(default=0.5, ge=0.0, le=1.0)
    labels: TriageLabels = Field(default_factory=TriageLabels)
    # Label name -> priority boost (0..1) used to order the queue.
    priority_labels: dict[str, float] = Field(
        default_factory=lambda: {
            "critical": 1.0,
            "P0": 1.0,
            "priority: high": 0.8,
            "high priority": 0.8,
            "P1": 0.6,
            "regression": 0.5,
            "priority: medium": 0.3,
            "P2": 0.3,
        }
    )
    hardware_keywords: dict[str, list[str]] = Field(default_factory=_default_hardware_keywords)
    # A hardware class counts when its mentions add up to this much (title and labels count 2).
    hardware_min_mentions: int = Field(default=2, ge=1)
    # Hardware class that "2x A100", "4 GPUs", "cuda:1" point to (None disables it).
    gpu_count_hardware: str | None = "multi-gpu"
    # Import names of the repository's package (default: the repository name), so that paths
    # into the package count as code pointers and user scripts do not.
    package_names: list[str] = Field(default_factory=list)
    # Fewer prose words than this (body and reporter comments, code excluded) is no description.
    min_description_words: int = Field(default=8, ge=0)
    # Caps on scanned text: issue text is untrusted and may be huge.
    max_body_chars: int = Field(default=12_000, ge=1_000)
    max_comment_chars: int = Field(default=4_000, ge=200)
    max_comments: int = Field(default=100, ge=1)

    @field_validator("weights")
    @classmethod
    def _known_signals(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown signal name(s) {unknown}; known: {sorted(DEFAULT_WEIGHTS)}")
        return value

    def weight(self, signal: str) -> float:
        return self.weights.get(signal, DEFAULT_WEIGHTS[signal])
