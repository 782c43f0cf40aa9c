"""Related search: signatures and rare words beat boilerplate; issue text is never FTS syntax."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.mirror.related import error_signatures, find_related, search_issues
from bot.models import Comment, Issue
from bot.store.mirror import MirrorStore

REPO = "octo/widgets"
BOILERPLATE = "### System Info\nplatform linux, python 3.11\n### Who can help?\n@maintainers\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> MirrorStore:
    s = MirrorStore(tmp_path_factory.mktemp("related") / "bot.sqlite3")
    filler = [
        Issue(
            repo=REPO,
            number=n,
            title=f"Question about feature {n}",
            body=BOILERPLATE + f"How do I use option {n}?",
        )
        for n in range(100, 160)
    ]
    s.upsert_many(
        [
            *filler,
            Issue(
                repo=REPO,
                number=1,
                state="closed",
                labels=["bug"],
                title="Merging adapters fails",
                body=BOILERPLATE
                + 'File "/usr/lib/python3/site-packages/widgets/tuners/lora.py", line 348\n'
                "AttributeError: 'Embedding' object has no attribute 'weight_scale'",
            ),
            Issue(
                repo=REPO,
                number=2,
                title="Crash with embedding layer",
                labels=["bug"],
                body=BOILERPLATE + "TypeError: unsupported operand",
            ),
            Issue(repo=REPO, number=3, title="Duplicate report", body="see #1 for the same thing"),
        ]
    )
    return s


def test_shared_error_message_in_other_words_ranks_first(store: MirrorStore) -> None:
    query = Issue(
        repo=REPO,
        number=50,
        title="merge_and_unload blows up",
        body=BOILERPLATE,
        comments=[
            Comment(
                body="widgets/tuners/lora.py raises AttributeError: 'Embedding' object has no attribute 'weight_scale'"
            )
        ],
    )
    related = find_related(store, query, limit=5)
    assert related[0].number == 1
    assert any(m.startswith("msg:AttributeError") for m in related[0].matched)
    assert [r.number for r in find_related(store, query, state="open")][:1] != [1]


def test_explicit_references_count_both_ways(store: MirrorStore) -> None:
    three = store.get_issue(REPO, 3)
    one = store.get_issue(REPO, 1)
    assert three is not None and one is not None
    assert find_related(store, three)[0].matched[0] == "mentions #1"
    assert "mentioned by #3" in [m for r in find_related(store, one) for m in r.matched]


def test_the_issue_itself_and_pull_requests_are_excluded(store: MirrorStore) -> None:
    one = store.get_issue(REPO, 1)
    assert one is not None
    assert 1 not in [r.number for r in find_related(store, one, limit=50)]


def test_boilerplate_alone_relates_nothing(store: MirrorStore) -> None:
    query = Issue(repo=REPO, number=51, title="New thing", body=BOILERPLATE)
    assert [r for r in find_related(store, query) if r.score >= 5] == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("KeyError: 'layers.0.mlp'", {"exc:KeyError", "msg:KeyError: 'layers # mlp'"}),
        ('File "/x/site-packages/pkg/sub/mod.py", line 3', {"path:sub/mod.py", "file:mod.py"}),
        ("call torch.nn.functional.softmax here", {"name:torch.nn.functional.softmax"}),
        ("see https://example.com or e.g. this", set()),
        (
            "ERROR: could not build wheels for flash_attn",
            {"msg:error: could not build wheels for flash_attn", "name:flash_attn"},
        ),
        ("in load_adapter(model)", {"name:load_adapter", "call:load_adapter"}),
    ],
)
def test_signatures(text: str, expected: set[str]) -> None:
    assert set(error_signatures(Issue(repo=REPO, number=1, body=text))) == expected


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(min_size=1, max_size=200))
def test_any_text_is_a_safe_query(store: MirrorStore, text: str) -> None:
    find_related(store, Issue(repo=REPO, number=99, title=text, body=text))
    search_issues(store, text, repo=REPO)
    search_issues(store, text, title_only=True)
