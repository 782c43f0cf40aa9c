"""The prompt held to the coordinator's example, section by section, in every mode.

The LARS-style case (tests/prompt_cases.py) is seeded into the fake GitHub; the issue,
the tree and the source files are read through the real client (checked against
GitHub's OpenAPI description), then assessed and rendered. Regenerate the goldens after
an intended change with `UPDATE_GOLDEN=1` and review the diff like code.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from bot.config.repo import RepoConfig
from bot.github.client import GitHubClient, GitHubFactory
from bot.github.trees import RepoTree
from bot.mirror.formats import rest_issue
from bot.mirror.view import MirrorStoreView
from bot.store.mirror import MirrorStore
from bot.triage.pipeline import assess
from bot.triage.render import Renderer
from bot.triage.source import gather_context
from tests import prompt_cases as case
from tests.fakegithub import FakeGitHub
from tests.test_golden import check_golden

MODES = {
    "review": "review-existing-pr",
    "fix": "fix",
    "verify": "verify-close",
    "implement": "implement",
    "investigate": "investigate",
}


async def fetch(gh: GitHubClient, repo: str, number: int):  # type: ignore[no-untyped-def]
    return rest_issue(
        repo,
        await gh.get_issue(repo, number),
        await gh.list_comments(repo, number),
        await gh.list_timeline(repo, number),
    )


async def render_case(
    fake: FakeGitHub, gh: GitHubClient, tmp_path: Path, variant: str, *, seed: bool = True
) -> tuple[str, list[str], int]:
    """The prompt for one variant, the config errors, and the requests the gather cost."""
    if seed:
        case.seed(fake, variant)
    mirror = MirrorStore(tmp_path / "mirror.sqlite3")
    for number in case.RELATED:
        mirror.upsert_issue(await fetch(gh, case.REPO, number))
    issue = await fetch(gh, case.REPO, case.NUMBER)
    mirror.upsert_issue(issue)
    fetched = await gh.get_tree(case.REPO, "HEAD")
    assert fetched is not None
    tree = RepoTree.from_api(case.REPO, fetched[0])
    config = RepoConfig()
    assessment = assess(issue, MirrorStoreView(mirror), config, None, tree=tree)
    before = len(fake.requests)
    with case.blob_cache(tmp_path / "blobs.sqlite3") as cache:
        source, pulls = await gather_context(gh, cache, tree, issue, assessment.decision)
    cost = len(fake.requests) - before
    rendered = Renderer().prompt(dataclasses.replace(assessment.prompt, source=source, pulls=pulls))
    return rendered.text, rendered.override_errors, cost


@pytest.fixture
async def gh(fake_github: FakeGitHub, github_factory: GitHubFactory) -> GitHubClient:
    return await github_factory.for_installation(1)


def section(text: str, heading: str) -> str:
    """The body of the `## N. <heading>` section."""
    match = re.search(
        rf"^## \d+\. {re.escape(heading)}[^\n]*\n(.*?)(?=^## \d+\. |\Z)", text, re.M | re.S
    )
    assert match, f"no section {heading!r}"
    return match.group(1)


@pytest.mark.parametrize("variant", list(MODES))
async def test_each_mode_matches_its_golden(
    fake_github: FakeGitHub, gh: GitHubClient, tmp_path: Path, variant: str
) -> None:
    text, errors, _ = await render_case(fake_github, gh, tmp_path, variant)
    assert errors == []
    assert f"mode **{MODES[variant]}**" in text
    check_golden(f"lars-{variant}.prompt.md", text)


async def test_lars_prompt_meets_the_coordinator_example_section_by_section(
    fake_github: FakeGitHub, gh: GitHubClient, tmp_path: Path
) -> None:
    text, _, cost = await render_case(fake_github, gh, tmp_path, "review")
    n, pr = case.NUMBER, case.PR
    assert text.startswith(f"# Review and complete PR #{pr} for: {case.REPO}#{n} ")

    setup = section(text, "Setup")
    commands = re.search(r"```bash\n(.*?)```", setup, re.S)
    assert commands is not None
    assert commands.group(1).splitlines() == [
        f"git worktree add ../issue-{n} -b fix/issue-{n}",
        f"cd ../issue-{n}",
        f"gh pr checkout {pr} --branch fix/issue-{n} --force",
        "pip install -e '.[test]'",
    ]
    assert "Read `CONTRIBUTING.md` for build and test instructions" in setup
    assert "cuda: available here" in setup  # `.cuda()` in the reproduction

    target = section(text, "The target issue")
    assert case.TRACEBACK.splitlines()[-1] in target  # the body in full
    assert "matthewdouglas` (member), 2025-11-18" in target
    assert "belongs in a separate" in target

    related = section(text, "Related issues")
    assert "How it was resolved" in related and "Fixed in #1290" in related

    prs = section(text, "Existing pull requests")
    assert f"#{pr} (open)" in prs and "`bitsandbytes/backends/cuda/ops.py`" in prs
    assert "review, test and complete\nit before writing anything new" in prs

    analysis = section(text, "Additional analysis")
    assert "#1403 and #1500 report the same error signature" in analysis
    assert re.search(r"`bitsandbytes/backends/cuda/ops\.py@[0-9a-f]{12}:32`", analysis)
    assert "32> " in analysis and "    if optimizer_name not in str2optimizer32bit:" in analysis
    assert " 6> str2optimizer32bit = {" in analysis  # the identifier's definition, numbered

    approach = section(text, "Recommended approach")
    assert 'pytest tests/test_optim.py -v --tb=short -k "LARS or str2optimizer32bit' in approach
    assert "Fallback" not in approach

    done = section(text, "When you are done")
    assert f"git push -u origin fix/issue-{n}" in done
    assert f'"Refs #{n}"' in done  # a review builds on the PR that says Fixes
    assert "still commit, push, and create\nthe PR" in done

    do_not = section(text, "What NOT to do")
    assert "Out of scope, per `matthewdouglas` on 2025-11-18" in do_not
    assert "don't change the 8bit blockwise dispatch" in do_not
    assert f"Do not duplicate the open pull request #{pr}" in do_not
    assert cost <= 4  # quoted files, pyproject.toml and the PR's files, in parallel


async def test_fix_mode_closes_the_issue_and_blobs_are_not_fetched_twice(
    fake_github: FakeGitHub, gh: GitHubClient, tmp_path: Path
) -> None:
    text, _, first = await render_case(fake_github, gh, tmp_path, "fix")
    assert f'"Fixes #{case.NUMBER}"' in section(text, "When you are done")
    assert "None found" in section(text, "Existing pull requests")
    contents = [r for r in fake_github.requests if "/contents/" in r.api_path]
    assert {r.api_path.split("/contents/")[1] for r in contents} == {
        "bitsandbytes/backends/cuda/ops.py",
        "bitsandbytes/optim/optimizer.py",
        "pyproject.toml",
    }
    fake_github.requests.clear()
    again, _, second = await render_case(fake_github, gh, tmp_path, "fix", seed=False)
    assert second == 0 and again == text
