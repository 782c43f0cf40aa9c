"""Properties of decide(): never raises on arbitrary input, deterministic, bounded evidence."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config.triage import TriageRules
from bot.models import Comment, ExistingPR, Issue, RelatedIssue
from bot.triage.engine import decide

RULES = TriageRules(maintainers=["maint"])
# Text biased towards the characters the patterns care about.
PIECES = st.sampled_from(
    [
        "Traceback (most recent call last)",
        'File "/x/peft/a.py", line 3',
        "```",
        "`x_y`",
        "#12",
        "PR #5",
        "https://github.com/huggingface/peft/pull/9",
        "https://github.com/o/r/blob/main/src/a.py#L4",
        "![a](b)",
        "<img ",
        "ROCm",
        "2x A100",
        "cuda:1",
        "gfx942",
        "closing",
        "it works.",
        "Duplicate of #3",
        "KeyError: 'x'",
        "\n",
        "> ",
        "### Reproduction\n",
        "İ",
    ]
)
TEXT = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(PIECES, st.text(max_size=20)), max_size=40).map("".join),
)
ASSOCIATIONS = st.sampled_from(
    [None, "OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR", "NONE", "weird"]
)
AUTHORS = st.sampled_from([None, "maint", "reporter", "someone", "bot[bot]", ""])

COMMENTS = st.builds(
    Comment,
    author=AUTHORS,
    author_association=ASSOCIATIONS,
    author_is_bot=st.booleans(),
    body=TEXT,
)
ISSUES = st.builds(
    Issue,
    repo=st.sampled_from(["huggingface/peft", "o/r", "vllm-project/vllm"]),
    number=st.integers(min_value=1, max_value=10**6),
    title=TEXT,
    body=TEXT,
    author=AUTHORS,
    author_association=ASSOCIATIONS,
    labels=st.lists(
        st.one_of(
            TEXT, st.sampled_from(["Duplicate", "usage", "rocm", "P0", "Contributions Welcome"])
        ),
        max_size=5,
    ),
    reactions=st.dictionaries(st.sampled_from(["THUMBS_UP", "HEART", "EYES"]), st.integers(0, 100)),
    comment_count=st.integers(0, 500),
    comments=st.lists(COMMENTS, max_size=6),
)
PRS = st.lists(
    st.builds(
        ExistingPR,
        number=st.integers(1, 10**6),
        state=st.sampled_from(["open", "merged", "closed"]),
        found_by=st.just("timeline"),
    ),
    max_size=3,
)
RELATED = st.lists(
    st.builds(
        RelatedIssue,
        number=st.integers(1, 10**6),
        state=st.sampled_from(["open", "closed"]),
        title=TEXT,
        score=st.floats(0, 1),
    ),
    max_size=3,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ISSUES, PRS, RELATED)
def test_decide_never_raises_and_is_well_formed(
    issue: Issue, prs: list[ExistingPR], related: list[RelatedIssue]
) -> None:
    decision = decide(issue, RULES, existing_prs=prs, related=related)
    assert 0.0 <= decision.score <= 1.0
    assert 0.0 <= decision.priority.score <= 1.0
    assert decision.summary
    assert all(len(s.evidence) <= 200 for s in decision.signals)
    assert decision.actionable is (decision.verdict == "actionable")
    assert (decision.duplicate_of is not None) <= (decision.verdict == "duplicate")
    assert bool(decision.missing) is (decision.verdict != "actionable")


@settings(max_examples=60, deadline=None)
@given(ISSUES, PRS)
def test_decide_is_deterministic(issue: Issue, prs: list[ExistingPR]) -> None:
    first = decide(issue, RULES, existing_prs=prs)
    again = decide(issue.model_copy(deep=True), RULES, existing_prs=list(prs))
    assert first.model_dump() == again.model_dump()


def test_huge_hostile_body_is_decided() -> None:
    body = ("a_" * 20_000) + ("`" * 10_000) + ("#" * 10_000) + ('File "' + "/" * 500) * 20
    decision = decide(Issue(repo="o/r", number=1, title="x" * 10_000, body=body), RULES)
    assert decision.verdict in {"needs-info", "needs-decision", "question"}
