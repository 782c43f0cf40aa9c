"""Repository knowledge from the default branch tree: pure answers and the cached fetch."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.github import GitHubClient, GitHubFactory
from bot.github.trees import RepoTree, TreeCache, push_tree_sha
from bot.store.trees import TreeStore
from tests.conftest import assert_conformance
from tests.fakegithub import FakeGitHub

REPO = "pytorch/vision"

VISION = RepoTree.from_paths(
    REPO,
    "t1",
    [
        "setup.py",
        "torchvision/__init__.py",
        "torchvision/ops/__init__.py",
        "torchvision/ops/boxes.py",
        "torchvision/models/detection/roi_heads.py",
        "test/test_ops.py",
        "test/test_boxes.py",
        "docs/source/conf.py",
        "references/detection/train.py",
    ],
)
SRC_LAYOUT = RepoTree.from_paths(
    "huggingface/peft",
    "t2",
    [
        "src/peft/__init__.py",
        "src/peft/tuners/lora/layer.py",
        "tests/test_lora.py",
        "tests/unit/test/test_x.py",
        "examples/__init__.py",
    ],
)


def test_packages_come_from_the_tree_not_the_repository_name() -> None:
    assert VISION.packages == ("torchvision",)
    assert VISION.package_dirs == ("torchvision",)
    assert SRC_LAYOUT.packages == ("peft",)
    assert SRC_LAYOUT.package_dirs == ("src/peft",)


def test_test_dirs_are_the_outermost_test_folders() -> None:
    assert VISION.test_dirs == ("test",)
    assert SRC_LAYOUT.test_dirs == ("tests",)


def test_exists_covers_files_and_directories() -> None:
    assert VISION.exists("torchvision/ops/boxes.py")
    assert VISION.exists("/torchvision/ops/")
    assert not VISION.exists("torchvision/ops/nms.py")


def test_traceback_paths_resolve_to_repository_files() -> None:
    site = "/usr/lib/python3.10/site-packages/torchvision/ops/boxes.py"
    assert VISION.resolve(site) == "torchvision/ops/boxes.py"
    assert VISION.resolve("/home/me/vision/torchvision/ops/boxes.py") == (
        "torchvision/ops/boxes.py"
    )
    peft = "/opt/conda/lib/python3.11/site-packages/peft/tuners/lora/layer.py"
    assert SRC_LAYOUT.resolve(peft) == "src/peft/tuners/lora/layer.py"


def test_other_libraries_and_user_scripts_do_not_resolve() -> None:
    assert VISION.resolve("/venv/lib/site-packages/other_lib/ops/boxes.py") is None
    assert VISION.resolve("/home/me/train.py") is None
    assert VISION.resolve("boxes.py") is None  # a bare name is not a pointer
    assert VISION.resolve("setup.py") == "setup.py"  # a top-level file is


def test_tests_for_a_source_file() -> None:
    assert VISION.tests_for("torchvision/ops/boxes.py") == ["test/test_boxes.py"]
    assert VISION.tests_for("torchvision/ops/__init__.py") == []


def test_from_api_keeps_blobs_only() -> None:
    tree = RepoTree.from_api(
        REPO,
        {
            "sha": "abc",
            "truncated": False,
            "tree": [
                {"path": "torchvision", "type": "tree"},
                {"path": "torchvision/__init__.py", "type": "blob"},
                {"path": "third_party/x", "type": "commit"},
            ],
        },
    )
    assert tree.paths == frozenset({"torchvision/__init__.py"})
    assert tree.sha == "abc"


@given(st.text(max_size=300))
def test_resolve_only_answers_with_existing_paths(path: str) -> None:
    found = VISION.resolve(path)
    assert found is None or found in VISION.paths


def test_push_to_the_default_branch_only() -> None:
    payload = {
        "ref": "refs/heads/main",
        "repository": {"full_name": REPO, "default_branch": "main"},
        "head_commit": {"tree_id": "newsha"},
    }
    assert push_tree_sha(payload) == (REPO, "newsha")
    assert push_tree_sha(payload | {"ref": "refs/heads/feature"}) is None
    assert push_tree_sha(payload | {"ref": "refs/tags/v1"}) is None


async def test_cache_fetches_once_then_costs_nothing_until_a_push(
    tmp_path: Path, fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.require_auth = True
    fake_github.add_repo(REPO)
    fake_github.set_file(REPO, "torchvision/__init__.py", "")
    fake_github.set_file(REPO, "torchvision/ops/boxes.py", "def nms(): ...\n")
    gh: GitHubClient = await github_factory.for_installation(1)
    cache = TreeCache(TreeStore(tmp_path / "bot.sqlite3"))

    def tree_requests() -> int:
        return len(fake_github.requests_to("GET", "/git/trees/"))

    tree = await cache.get(gh, REPO)
    assert tree is not None and tree.packages == ("torchvision",)
    assert tree_requests() == 1
    again = await cache.get(gh, REPO)
    assert again is not None and again.sha == tree.sha
    assert tree_requests() == 1  # warm: no request

    push = {
        "ref": "refs/heads/main",
        "repository": {"full_name": REPO, "default_branch": "main"},
        "head_commit": {"tree_id": tree.sha},
    }
    assert not await cache.on_push(push)  # same tree: nothing to refresh
    assert await cache.on_push(push | {"head_commit": {}})  # unknown tree: revalidate
    same = await cache.get(gh, REPO)
    assert same is not None and same.sha == tree.sha
    assert tree_requests() == 2  # one conditional request, answered 304
    assert fake_github.requests_to("GET", "/git/trees/")[-1].status in (None, 304)

    fake_github.set_file(REPO, "torchvision/ops/nms.py", "")
    assert await cache.on_push(push | {"head_commit": {}})
    changed = await cache.get(gh, REPO)
    assert changed is not None and changed.exists("torchvision/ops/nms.py")
    assert tree_requests() == 3
    assert_conformance(fake_github.requests)


async def test_cache_without_github_uses_the_stored_copy_or_none(
    tmp_path: Path, fake_github: FakeGitHub, github_factory: GitHubFactory
) -> None:
    fake_github.add_repo(REPO)  # no files: the fake answers 404, like an empty repository
    gh = await github_factory.for_installation(1)
    cache = TreeCache(TreeStore(tmp_path / "bot.sqlite3"))
    assert await cache.get(gh, REPO) is None
    assert await cache.get(gh, REPO) is None  # remembered: no second request
    assert len(fake_github.requests_to("GET", "/git/trees/")) == 1
    assert cache.cached(REPO) is None  # an empty tree is no tree: the engine falls back
    cache.put(VISION)
    assert cache.cached(REPO) == VISION
    await cache.on_push(
        {
            "ref": "refs/heads/main",
            "repository": {"full_name": REPO, "default_branch": "main"},
            "head_commit": {"tree_id": "other"},
        }
    )
    stale = await cache.get(gh, REPO)
    assert stale is not None and stale.paths == VISION.paths
