"""Which actionable issues to dispatch first: a pure ranking by impact.

The coordinator's rule of thumb, made explicit: "be selective; prioritize impact:
reactions, comments, priority labels, what blocks other work". Each factor saturates
(ten reactions are not worth twice five), so no single loud issue drowns the rest, and
every candidate carries a one-line reason naming the factors that placed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.config.triage import TriageRules
from bot.triage.text import normalise_label

# How much each factor can add at most; the sum is the impact (0..WEIGHT total).
WEIGHTS: dict[str, float] = {
    "priority": 1.0,  # a maintainer's priority label says most
    "reactions": 0.5,
    "blocking": 0.4,
    "duplicates": 0.4,
    "comments": 0.3,
    "age": 0.1,
}
# Labels that say the issue blocks other work, without naming which.
BLOCKING_LABELS = frozenset({"blocking", "blocker"})
DEFAULT_PRIORITY_LABELS: Mapping[str, float] = TriageRules().priority_labels


@dataclass(frozen=True)
class CandidateFacts:
    """What the store knows about one open, actionable, undispatched issue without a PR."""

    repo: str
    number: int
    title: str
    url: str | None = None
    labels: tuple[str, ...] = ()
    reactions: int = 0
    comments: int = 0
    created_at: datetime | None = None
    score: float = 0.0  # the engine's actionability score
    mode: str = "fix"
    summary: str = ""  # the engine's verdict summary
    signals: tuple[str, ...] = ()  # positive signals, strongest first
    duplicates: tuple[int, ...] = ()  # issues marked duplicate of this one
    blocks: tuple[int, ...] = ()  # open issues that say they wait for this one


@dataclass(frozen=True)
class Candidate:
    facts: CandidateFacts
    impact: float
    reason: str
    evidence: str
    factors: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        f = self.facts
        return {
            "repo": f.repo,
            "number": f.number,
            "title": f.title,
            "url": f.url,
            "impact": self.impact,
            "reason": self.reason,
            "evidence": self.evidence,
            "factors": self.factors,
            "score": f.score,
            "mode": f.mode,
            "reactions": f.reactions,
            "comments": f.comments,
            "labels": list(f.labels),
            "duplicates": list(f.duplicates),
            "blocks": list(f.blocks),
            "created_at": f.created_at.isoformat() if f.created_at else None,
        }


def _saturating(count: float, half: float) -> float:
    """0 for none, 0.5 at `half`, approaching 1: diminishing returns."""
    return count / (count + half) if count > 0 else 0.0


def _normalised(boosts: Mapping[str, float]) -> dict[str, float]:
    return {normalise_label(name): boost for name, boost in boosts.items()}


def _found_priority(
    labels: Sequence[str], normalised: Mapping[str, float]
) -> list[tuple[str, float]]:
    """The issue's priority labels with their boosts, strongest first."""
    pairs = [(label, normalised.get(normalise_label(label), 0.0)) for label in labels]
    return sorted((p for p in pairs if p[1] > 0), key=lambda p: -p[1])


def _age_days(created_at: datetime | None, now: datetime) -> float:
    if created_at is None:
        return 0.0
    if created_at.tzinfo is None and now.tzinfo is not None:
        now = now.replace(tzinfo=None)
    return max(0.0, (now - created_at).total_seconds() / 86400)


def factors_of(
    facts: CandidateFacts, *, now: datetime, priority_labels: Mapping[str, float]
) -> dict[str, float]:
    """Each factor's share of the impact; `priority_labels` are normalised label names."""
    priority = _found_priority(facts.labels, priority_labels)
    blocking_label = any(normalise_label(label) in BLOCKING_LABELS for label in facts.labels)
    blocking = len(facts.blocks) + (1 if blocking_label and not facts.blocks else 0)
    raw = {
        "priority": priority[0][1] if priority else 0.0,
        "reactions": _saturating(facts.reactions, 5),
        "blocking": _saturating(blocking, 1),
        "duplicates": _saturating(len(facts.duplicates), 2),
        "comments": _saturating(facts.comments, 10),
        "age": min(1.0, _age_days(facts.created_at, now) / 365),
    }
    return {name: round(WEIGHTS[name] * value, 4) for name, value in raw.items()}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _numbers(numbers: Sequence[int], limit: int = 3) -> str:
    shown = ", ".join(f"#{n}" for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def reason_of(
    facts: CandidateFacts,
    factors: Mapping[str, float],
    *,
    now: datetime,
    priority_labels: Mapping[str, float],
) -> str:
    """One line: the factors that placed the issue, strongest first (labels normalised)."""
    parts: dict[str, str] = {}
    priority = _found_priority(facts.labels, priority_labels)
    if priority:
        parts["priority"] = f"label '{priority[0][0]}'"
    if facts.reactions:
        parts["reactions"] = _plural(facts.reactions, "reaction")
    if facts.blocks:
        parts["blocking"] = f"blocks {_numbers(facts.blocks)}"
    elif factors.get("blocking"):
        parts["blocking"] = "labelled blocking"
    if facts.duplicates:
        parts["duplicates"] = (
            f"{_plural(len(facts.duplicates), 'duplicate')} ({_numbers(facts.duplicates)})"
        )
    if facts.comments:
        parts["comments"] = _plural(facts.comments, "comment")
    days = int(_age_days(facts.created_at, now))
    if days >= 30:
        parts["age"] = f"open {days} days"
    ordered = sorted(parts, key=lambda name: -factors.get(name, 0.0))
    return "; ".join(parts[name] for name in ordered) or "no community signal yet"


def evidence_of(facts: CandidateFacts) -> str:
    """Why the engine called it actionable: its score, mode and strongest signals."""
    signals = ", ".join(facts.signals[:4]) or "no positive signal recorded"
    return f"actionable {facts.score:.2f} ({facts.mode}): {signals}"


def rank(
    candidates: Iterable[CandidateFacts],
    *,
    now: datetime,
    priority_labels: Mapping[str, float] = DEFAULT_PRIORITY_LABELS,
    limit: int | None = None,
) -> list[Candidate]:
    """Highest impact first; ties go to the more confident verdict, then the lower number."""
    boosts = _normalised(priority_labels)
    scored = []
    for facts in candidates:
        factors = factors_of(facts, now=now, priority_labels=boosts)
        scored.append((round(sum(factors.values()), 4), facts, factors))
    scored.sort(key=lambda s: (-s[0], -s[1].score, s[1].repo, s[1].number))
    return [
        Candidate(
            facts=facts,
            impact=impact,
            reason=reason_of(facts, factors, now=now, priority_labels=boosts),
            evidence=evidence_of(facts),
            factors=factors,
        )
        for impact, facts, factors in (scored if limit is None else scored[:limit])
    ]
