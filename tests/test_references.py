"""The one `#N` reference parser, and the one maintainer rule the verdict and prompt share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config.repo import RepoConfig
from bot.config.triage import TriageRules
from bot.github.references import (
    bare_numbers,
    closing_targets,
    parse_named,
    references,
    targets,
)
from bot.models import Comment, Issue
from bot.triage.pipeline import FixedView, assess
from bot.triage.render import Renderer, maintainer_remarks

OWN = "o/r"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see #12", [(OWN, 12)]),
        ("(#12), [#13] and #14.", [(OWN, 12), (OWN, 13), (OWN, 14)]),
        ("other/repo#12", [("other/repo", 12)]),
        ("abc#12 a_#13 a/#14 &#15;", []),
        ("https://github.com/a/b/issues/9 then #3", [("a/b", 9), (OWN, 3)]),
        ("#12345678 is too long", []),
        ("#0", [(OWN, 0)]),
        ("", []),
    ],
)
def test_targets(text: str, expected: list[tuple[str, int]]) -> None:
    assert targets(text, OWN) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fixes #12", [(OWN, 12)]),
        ("closes: other/repo#3, see https://github.com/a/b/issues/9", [("other/repo", 3)]),
        ("resolved https://github.com/a/b/issues/9", [("a/b", 9)]),
        ("prefixes #4 and fixed\t#5", [(OWN, 5)]),
        ("see #4", []),
    ],
)
def test_closing_targets(text: str, expected: list[tuple[str, int]]) -> None:
    assert closing_targets(text, OWN) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("o/r#12", ("o/r", 12)), ("o/r#", None), ("#12", None), ("o/r#12 x", None)],
)
def test_parse_named(value: str, expected: tuple[str, int] | None) -> None:
    assert parse_named(value) == expected


def test_bare_numbers_leave_qualified_references_out() -> None:
    assert bare_numbers("#1, x/y#2, #3") == [1, 3]


@given(st.lists(st.sampled_from(["#", "1", "a", "/", "&", " ", "o/r", "https://github.com/"])))
def test_references_point_into_the_text(parts: list[str]) -> None:
    text = "".join(parts)
    for ref in references(text):
        assert 0 <= ref.start < ref.end <= len(text)
        assert str(ref.number) in text[ref.start : ref.end]


def test_hostile_text_is_scanned_in_linear_time() -> None:
    for text in ("a/" * 50_000 + "#1", "#" * 100_000, "&#1" * 30_000):
        references(text)  # finishes (quadratic scans would not, in a test's time)


def comment(author: str, association: str, body: str) -> Comment:
    return Comment(author=author, author_association=association, body=body)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (TriageRules(), ["owner", "member"]),  # associations are matched case-insensitively
        (TriageRules(maintainer_associations=["CONTRIBUTOR"]), ["contributor"]),
        (TriageRules(maintainer_associations=[], maintainers=["Helper"]), ["helper"]),
    ],
)
def test_maintainer_remarks_follow_the_configured_rule(
    rules: TriageRules, expected: list[str]
) -> None:
    issue = Issue(
        repo=OWN,
        number=1,
        comments=[
            comment("owner", "OWNER", "a"),
            comment("member", "member", "b"),
            comment("contributor", "CONTRIBUTOR", "c"),
            comment("helper", "NONE", "d"),
        ],
    )
    assert [c.author for c in maintainer_remarks(issue, rules)] == expected


def test_the_prompt_quotes_a_maintainer_the_repositorys_config_names() -> None:
    remark = "This is out of scope for the library, sorry."
    issue = Issue(
        repo=OWN,
        number=1,
        title="Add a frobnicator",
        body="Please add it.",
        comments=[comment("triager", "CONTRIBUTOR", remark)],
    )
    for associations, quoted in ((["CONTRIBUTOR"], True), (["OWNER"], False)):
        config = RepoConfig.model_validate({"triage": {"maintainer_associations": associations}})
        prompt = Renderer().prompt(assess(issue, FixedView(), config, None).prompt).text
        assert ("Remarks by maintainers" in prompt) is quoted
