"""The coordinator's related-issue rule, kept as the baseline the mirror must beat.

score = 3 x (shared error signatures) + (shared tokens) + (shared labels), over the
title plus the first 1,000 characters of the body, with a hand-kept stop list;
candidates scoring >= 3 are kept, best first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bot.models import Issue

STOP_WORDS = set(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "else",
        "when",
        "while",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "into",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "me",
        "my",
        "your",
        "our",
        "their",
        "not",
        "no",
        "yes",
        "do",
        "does",
        "did",
        "done",
        "have",
        "has",
        "had",
        "can",
        "could",
        "should",
        "would",
        "will",
        "just",
        "also",
        "so",
        "as",
        "than",
        "too",
        "very",
        "some",
        "any",
        "all",
        "each",
        "more",
        "most",
        "other",
        "such",
        "only",
        "same",
        "own",
        "up",
        "down",
        "out",
        "over",
        "under",
        "again",
        "once",
        "about",
        "after",
        "before",
        "above",
        "below",
        "how",
        "what",
        "which",
        "who",
        "whom",
        "why",
        "where",
        "get",
        "got",
        "use",
        "using",
        "used",
        "issue",
        "bug",
        "error",
        "problem",
        "hi",
        "hello",
        "thanks",
        "thank",
        "please",
        "help",
        "work",
        "working",
        "works",
        "run",
        "running",
        "version",
        "info",
        "system",
    ]
)
HEAD_CHARS = 1000
MIN_SCORE = 3

_SIGNATURE = re.compile(r"\b\w+(?:Error|Exception)\b|[\w/.-]+\.py\b")
_TOKEN = re.compile(r"[a-z0-9_]{3,}")


def _text(issue: Issue) -> str:
    return f"{issue.title}\n{issue.body[:HEAD_CHARS]}"


def _signatures(text: str) -> set[str]:
    return set(_SIGNATURE.findall(text))


def _tokens(text: str) -> set[str]:
    return {t for t in _TOKEN.findall(text.lower()) if t not in STOP_WORDS}


class BaselineIndex:
    """The rule's features of every issue, computed once (the rule itself is unchanged)."""

    def __init__(self, corpus: Iterable[Issue]) -> None:
        self.features = [
            (
                other.repo,
                other.number,
                _signatures(_text(other)),
                _tokens(_text(other)),
                set(other.labels),
            )
            for other in corpus
        ]

    def related(self, issue: Issue, *, limit: int = 10) -> list[tuple[int, int]]:
        """(number, score) of the best candidates, as the coordinator ranked them."""
        text = _text(issue)
        sigs, toks, labels = _signatures(text), _tokens(text), set(issue.labels)
        scored = []
        for repo, number, other_sigs, other_toks, other_labels in self.features:
            if number == issue.number or repo != issue.repo:
                continue
            score = 3 * len(sigs & other_sigs) + len(toks & other_toks) + len(labels & other_labels)
            if score >= MIN_SCORE:
                scored.append((number, score))
        scored.sort(key=lambda item: (-item[1], item[0]))
        return scored[:limit]
