"""Configurable rules for the actionability engine (the `triage:` section of the repo config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TriageRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Hardware the repository's agents have (e.g. ["cuda"]); anything else needs a human.
    available_hardware: list[str] = Field(default_factory=lambda: ["cpu", "cuda"])
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    weights: dict[str, float] = Field(default_factory=dict)
    maintainers: list[str] = Field(default_factory=list)
