"""Source context: which files an issue points at, what is quoted, which tests cover them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.github.client import GitHubClient, GitHubFactory
from bot.github.trees import RepoTree
from bot.models import Comment, ExistingPR, Issue, TriageDecision
from bot.store.trees import TreeStore
from bot.triage.render import hardware_needs, prompt_mode
from bot.triage.source import (
    MAX_CHARS_TOTAL,
    build_source,
    detect_install,
    gather_context,
    identifiers,
    imports_module,
    plan_source,
    quote_file,
)
from tests import prompt_cases as case
from tests.fakegithub import FakeGitHub

FILES = case.repository_files()
TREE = RepoTree.from_paths(case.REPO, "f" * 40, FILES)


def issue(body: str, *comments: str) -> Issue:
    return Issue(
        repo=case.REPO,
        number=1,
        title="A bug",
        body=body,
        comments=[Comment(author="m", body=c) for c in comments],
    )


def test_traceback_frames_in_the_repository_come_first_deepest_first() -> None:
    plan = plan_source(issue(case.BODY), TREE)
    assert plan.files == ["bitsandbytes/backends/cuda/ops.py", "bitsandbytes/optim/optimizer.py"]
    assert plan.pointers[0].line == 32 and "_optimizer_update_32bit" in plan.pointers[0].why
    assert plan.unresolved == ["/home/rasmus/repro.py"]  # torch's own frame is not listed
    assert plan.setup_files == ["pyproject.toml"] and plan.docs == "CONTRIBUTING.md"
    assert [t for t, _ in plan.tests] == ["tests/test_optim.py"]


def test_permalinks_and_mentions_resolve_against_the_tree_and_files_are_capped() -> None:
    body = (
        "See https://github.com/o/r/blob/0123abc/bitsandbytes/optim/lars.py#L9 and"
        " bitsandbytes/functional.py:3, bitsandbytes/optim/optimizer.py, tests/test_optim.py"
        " and src/nowhere/missing.py"
    )
    plan = plan_source(issue(body), TREE)
    assert plan.files == [
        "bitsandbytes/optim/lars.py",
        "bitsandbytes/functional.py",
        "bitsandbytes/optim/optimizer.py",
    ]
    assert plan.pointers[0].line == 9
    assert plan.unresolved == ["src/nowhere/missing.py"]


def test_identifiers_in_backticks_and_their_definitions_are_quoted_with_line_numbers() -> None:
    names = identifiers(issue("`str2optimizer32bit` and `bnb.optim.LARS()` and `x`"))
    assert names == ["str2optimizer32bit", "LARS"]
    [excerpt] = quote_file(
        "bitsandbytes/backends/cuda/ops.py",
        "a" * 40,
        FILES["bitsandbytes/backends/cuda/ops.py"],
        [],
        names,
    )
    assert excerpt.start == 5 and excerpt.focus == 6 and excerpt.lines[-1] == "}"
    assert excerpt.ref == "bitsandbytes/backends/cuda/ops.py@aaaaaaaaaaaa:6"
    assert excerpt.numbered().splitlines()[1] == " 6> str2optimizer32bit = {"


def test_a_file_that_could_not_be_read_is_named_and_the_quote_budget_holds() -> None:
    plan = plan_source(issue(case.BODY), TREE)
    huge = "\n".join(f"x{i} = {i}" for i in range(100_000))
    source = build_source(
        plan,
        {"bitsandbytes/optim/optimizer.py": huge},
        {"bitsandbytes/backends/cuda/ops.py": "could not be fetched (GitHubUnavailable)"},
    )
    assert source.missing[0] == (
        "bitsandbytes/backends/cuda/ops.py: could not be fetched (GitHubUnavailable)"
    )
    assert sum(len(line) for e in source.excerpts for line in e.lines) <= MAX_CHARS_TOTAL


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"pyproject.toml": '[project.optional-dependencies]\ndev = ["x"]\ntest = ["y"]'}, "dev"),
        ({"pyproject.toml": "[project]\nname = 'x'\n"}, "pip install -e ."),
        ({"pyproject.toml": "not = [toml"}, "pip install -e ."),
        ({"Makefile": "build:\n\tcc\ninstall-dev:\n\tpip install -e .\n"}, "make install-dev"),
        ({"Makefile": "all:\n\tcc\n"}, None),
        ({}, None),
    ],
)
def test_install_command_is_detected(files: dict[str, str], expected: str | None) -> None:
    found = detect_install(files)
    assert found == expected or (expected == "dev" and found == "pip install -e '.[dev]'")


def test_tests_importing_a_module_are_recognised() -> None:
    module = "bitsandbytes/backends/cuda/ops.py"
    assert imports_module("from bitsandbytes.backends.cuda.ops import x\n", module)
    assert imports_module("import bitsandbytes.backends.cuda.ops as o\n", module)
    assert imports_module("from bitsandbytes.backends.cuda import ops, other\n", module)
    assert not imports_module("from bitsandbytes.backends.cuda import opsx\n", module)
    assert not imports_module("# from bitsandbytes.backends.cuda.ops import x\n", module)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet='/.:_-`aF" \nline0123456789py', max_size=3_000))
def test_planning_never_fails_on_arbitrary_text(text: str) -> None:
    plan = plan_source(issue(text, text), TREE)
    assert set(plan.files) <= set(FILES)


def test_planning_is_linear_on_hostile_text() -> None:
    hostile = ('File "' + "a/" * 5_000 + '", line 1\n') * 20 + "`" + "a" * 100_000
    started = time.perf_counter()
    plan_source(issue(hostile, hostile), TREE)
    assert time.perf_counter() - started < 2.0  # generous: a backtracking regex takes minutes


@pytest.fixture
async def gh(fake_github: FakeGitHub, github_factory: GitHubFactory) -> GitHubClient:
    return await github_factory.for_installation(1)


async def test_gather_names_unfetchable_files_and_reads_the_pull_files(
    fake_github: FakeGitHub, gh: GitHubClient, tmp_path: Path
) -> None:
    case.seed(fake_github, "review")
    # Gone between the tree and the read: the prompt names it instead of skipping it.
    del fake_github.state.repos[case.REPO].files[("bitsandbytes/optim/optimizer.py", None)]
    decision = TriageDecision(
        repo=case.REPO,
        number=case.NUMBER,
        verdict="actionable",
        score=0.9,
        existing_prs=[ExistingPR(number=case.PR, state="open", found_by="timeline")],
    )
    with case.blob_cache(tmp_path / "b.sqlite3") as cache:
        source, pulls = await gather_context(gh, cache, TREE, issue(case.BODY), decision)
    assert source.missing == [
        "bitsandbytes/optim/optimizer.py: not a regular text file on the default branch"
        " (or over 1 MB)"
    ]
    assert [e.path for e in source.excerpts] == ["bitsandbytes/backends/cuda/ops.py"] * 2
    assert pulls[0].files == ["bitsandbytes/backends/cuda/ops.py", "tests/test_optim.py"]
    assert source.install == "pip install -e '.[test]'"


async def test_without_a_tree_or_a_pull_request_nothing_is_fetched(
    fake_github: FakeGitHub, gh: GitHubClient, tmp_path: Path
) -> None:
    case.seed(fake_github, "fix")
    fake_github.requests.clear()
    decision = TriageDecision(repo=case.REPO, number=case.NUMBER, verdict="actionable", score=1)
    with case.blob_cache(tmp_path / "b.sqlite3") as cache:
        source, pulls = await gather_context(gh, cache, None, issue(case.BODY), decision)
    assert source.excerpts == [] and pulls == [] and fake_github.requests == []


async def test_a_push_that_leaves_a_file_unchanged_does_not_refetch_it(
    fake_github: FakeGitHub, gh: GitHubClient, tmp_path: Path
) -> None:
    case.seed(fake_github, "fix")
    state = fake_github.state.repos[case.REPO]
    blobs = {path: state.blob_sha(path) or "" for path in FILES}
    before = RepoTree.from_paths(case.REPO, "1" * 40, FILES, blobs=blobs)
    # The tree after a push that changed only CONTRIBUTING.md, as the store keeps it.
    store = TreeStore(tmp_path / "trees.sqlite3")
    store.put(
        RepoTree.from_paths(
            case.REPO, "2" * 40, FILES, blobs=blobs | {"CONTRIBUTING.md": "9" * 40}
        ).to_row(None)
    )
    row = store.get(case.REPO)
    assert row is not None
    after = RepoTree.from_row(row)
    assert after.blobs["pyproject.toml"] == blobs["pyproject.toml"]
    decision = TriageDecision(repo=case.REPO, number=case.NUMBER, verdict="actionable", score=1)
    with case.blob_cache(tmp_path / "b.sqlite3") as cache:
        first, _ = await gather_context(gh, cache, before, issue(case.BODY), decision)
        fake_github.requests.clear()
        second, _ = await gather_context(gh, cache, after, issue(case.BODY), decision)
    assert fake_github.requests == []
    assert [e.lines for e in second.excerpts] == [e.lines for e in first.excerpts]
    assert second.excerpts[0].ref.startswith("bitsandbytes/backends/cuda/ops.py@222222222222:")


@pytest.mark.parametrize(
    ("verdict", "mode", "framed"),
    [
        ("actionable", "fix", "fix"),
        ("actionable", "review-existing-pr", "review-existing-pr"),
        ("needs-info", "implement", "implement"),
        ("close-candidate", "fix", "verify-close"),
        ("close-candidate", "review-existing-pr", "verify-close"),
        ("needs-hardware", "fix", "investigate"),
        ("needs-hardware", "verify-close", "verify-close"),
    ],
)
def test_the_verdict_frames_the_prompt(verdict: str, mode: str, framed: str) -> None:
    decision = TriageDecision(
        repo="o/r",
        number=1,
        verdict=verdict,  # type: ignore[arg-type]
        score=0.5,
        mode=mode,  # type: ignore[arg-type]
    )
    assert prompt_mode(decision) == framed


@pytest.mark.parametrize(
    ("body", "hardware", "needs"),
    [
        ("x = torch.randn(3).cuda()", [], [("cuda", True)]),
        ("model.to('cuda')", [], [("cuda", True)]),
        ("t = torch.zeros(2, device='cuda')", ["rocm"], [("rocm", False)]),
        ("runs on cpu only", [], []),
        (
            "CUDA_VISIBLE_DEVICES=0,1 python x.py",
            ["multi-gpu"],
            [("multi-gpu", False), ("cuda", True)],
        ),
    ],
)
def test_hardware_the_issue_needs_against_what_the_agents_have(
    body: str, hardware: list[str], needs: list[tuple[str, bool]]
) -> None:
    decision = TriageDecision(
        repo="o/r", number=1, verdict="actionable", score=1, hardware=hardware
    )
    found = hardware_needs(issue(body), decision, ["cpu", "cuda"])
    assert [(n.name, n.available) for n in found] == needs
