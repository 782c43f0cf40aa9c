"""Repository knowledge from the default branch's tree: packages, test folders, paths.

`RepoTree` is pure: built from the git trees API's payload (or the mirror's copy), it
answers which top-level directories are Python packages, where tests live, whether a
path exists, and which repository file a traceback path points to. Nothing here is
guessed from the repository's name.

`TreeCache` fetches the tree through `GitHubClient.get_tree` and keeps it in the store
(bot/store/trees.py), keyed by repository with the tree's sha and ETag. A warm cache
costs no request; a `push` to the default branch marks the copy stale (with the new
tree sha), and the next read revalidates it with If-None-Match (a 304 when unchanged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from bot.github.client import GitHubClient
from bot.github.faults import GitHubRequestError, GitHubUnavailable
from bot.store.thread import DatabaseThread
from bot.store.trees import TreeRow, TreeStore

log = logging.getLogger(__name__)

# Paths beyond this many are dropped (GitHub itself truncates at 100k entries / 7 MB).
MAX_PATHS = 200_000
MAX_PATH_CHARS = 1_000
MAX_PARSED = 32  # parsed trees kept in memory
# Directory names that hold a repository's tests.
TEST_DIR_NAMES = frozenset({"tests", "test", "testing", "unittests", "unit_tests"})
# Folders whose files are never the repository's own importable code.
_NOT_PACKAGE = frozenset(
    {"tests", "test", "docs", "doc", "examples", "example", "scripts", "benchmarks", "bench"}
)


def _clean(path: str) -> str:
    return path.replace("\\", "/").strip().strip("/")


@dataclass(frozen=True)
class RepoTree:
    """The blob paths of one tree (the default branch at `sha`)."""

    repo: str
    sha: str
    paths: frozenset[str] = field(default_factory=frozenset)
    truncated: bool = False
    # Path -> git blob sha, when the source listed them: a file a push left unchanged keeps
    # its blob sha, so the prompt's quoted source is not fetched again (bot/triage/source.py).
    blobs: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, repo: str, payload: Mapping[str, Any]) -> RepoTree:
        """From GET /repos/{owner}/{repo}/git/trees/{sha}?recursive=1."""
        entries = payload.get("tree") or []
        blobs = {
            str(entry.get("path") or ""): str(entry.get("sha") or "")
            for entry in entries[:MAX_PATHS]
            if isinstance(entry, Mapping) and entry.get("type") == "blob"
        }
        return cls.from_paths(
            repo,
            str(payload.get("sha") or ""),
            blobs,
            truncated=bool(payload.get("truncated")) or len(entries) > MAX_PATHS,
            blobs={path: sha for path, sha in blobs.items() if sha},
        )

    @classmethod
    def from_paths(
        cls,
        repo: str,
        sha: str,
        paths: Iterable[str],
        *,
        truncated: bool = False,
        blobs: Mapping[str, str] | None = None,
    ) -> RepoTree:
        kept = frozenset(
            p for p in (_clean(path) for path in paths) if p and len(p) <= MAX_PATH_CHARS
        )
        return cls(repo=repo, sha=sha, paths=kept, truncated=truncated, blobs=dict(blobs or {}))

    @cached_property
    def dirs(self) -> frozenset[str]:
        """Every directory that holds a file, at any depth."""
        found: set[str] = set()
        for path in self.paths:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                found.add("/".join(parts[:i]))
        return frozenset(found)

    def exists(self, path: str) -> bool:
        """A file or directory of the tree."""
        cleaned = _clean(path)
        return cleaned in self.paths or cleaned in self.dirs

    @cached_property
    def package_dirs(self) -> tuple[str, ...]:
        """Directories of importable top-level packages: 'pkg' or 'src/pkg' with __init__.py."""
        found = []
        for path in self.paths:
            parts = path.split("/")
            if parts[-1] != "__init__.py":
                continue
            if len(parts) == 2 and parts[0] not in _NOT_PACKAGE:
                found.append(parts[0])
            elif (
                len(parts) == 3
                and parts[0] in ("src", "python", "lib")
                and parts[1] not in _NOT_PACKAGE
            ):
                found.append(f"{parts[0]}/{parts[1]}")
        return tuple(sorted(set(found)))

    @cached_property
    def packages(self) -> tuple[str, ...]:
        """Import names of the repository's top-level packages (`torchvision`, `vllm`)."""
        return tuple(sorted({d.rsplit("/", 1)[-1] for d in self.package_dirs}))

    @cached_property
    def test_dirs(self) -> tuple[str, ...]:
        """Directories named like a test folder that hold Python files, shallowest first."""
        holding = {path.rsplit("/", 1)[0] for path in self.paths if "/" in path}
        found = {
            d
            for d in self.dirs
            if d.rsplit("/", 1)[-1] in TEST_DIR_NAMES
            and any(h == d or h.startswith(d + "/") for h in holding)
        }
        # Keep only the outermost of nested test folders (tests/, not tests/unit/test/).
        outer = {d for d in found if not any(d.startswith(o + "/") for o in found if o != d)}
        return tuple(sorted(outer, key=lambda d: (d.count("/"), d)))

    def resolve(self, path: str) -> str | None:
        """The repository file a path from a traceback or a comment points to, if any.

        'src/pkg/mod.py', '/home/u/repo/pkg/mod.py' and '.../site-packages/pkg/mod.py'
        resolve to 'pkg/mod.py' when the tree has it (a 'src/' layout included); a file of
        another library ('site-packages/other_lib/x.py') or a user's script does not. A
        lone file name resolves only when it is a top-level file of the tree.
        """
        cleaned = _clean(path)
        if not cleaned or len(cleaned) > MAX_PATH_CHARS:
            return None
        if cleaned in self.paths:
            return cleaned
        parts = [p for p in cleaned.split("/") if p not in ("", ".")]
        # Longest suffix first, at least two segments, starting at a package or a
        # top-level directory of the tree (not at an arbitrary folder such as 'utils').
        tops = {d for d in self.dirs if "/" not in d}
        for i in range(len(parts) - 1):
            suffix = "/".join(parts[i:])
            if parts[i] not in tops and parts[i] not in self.packages:
                continue
            if suffix in self.paths:
                return suffix
            for package_dir in self.package_dirs:
                if "/" in package_dir and package_dir.endswith("/" + parts[i]):
                    prefixed = f"{package_dir.rsplit('/', 1)[0]}/{suffix}"
                    if prefixed in self.paths:
                        return prefixed
        return None

    def tests_for(self, path: str, limit: int = 5) -> list[str]:
        """Test files named after a source file: pkg/ops/boxes.py -> tests/**/test_boxes.py."""
        stem = _clean(path).rsplit("/", 1)[-1].removesuffix(".py")
        if not stem or stem == "__init__":
            return []
        wanted = {f"test_{stem}.py", f"{stem}_test.py"}
        roots = self.test_dirs
        found = [
            p
            for p in sorted(self.paths)
            if p.rsplit("/", 1)[-1] in wanted
            and (not roots or any(p.startswith(r + "/") for r in roots))
        ]
        return found[:limit]

    def to_row(self, etag: str | None) -> TreeRow:
        return TreeRow(
            repo=self.repo,
            sha=self.sha,
            etag=etag,
            paths=sorted(self.paths),
            truncated=self.truncated,
            stale=False,
            wanted_sha=None,
            blobs=dict(self.blobs),
        )

    @classmethod
    def from_row(cls, row: TreeRow) -> RepoTree:
        return cls.from_paths(
            row.repo, row.sha, row.paths, truncated=row.truncated, blobs=row.blobs
        )


def push_tree_sha(payload: Mapping[str, Any]) -> tuple[str, str] | None:
    """(repo, new tree sha) of a push to the default branch; None for any other push."""
    repository = payload.get("repository") or {}
    repo = repository.get("full_name")
    branch = repository.get("default_branch")
    if not repo or not branch or payload.get("ref") != f"refs/heads/{branch}":
        return None
    head = payload.get("head_commit") or {}
    return str(repo), str(head.get("tree_id") or "")


def _usable(tree: RepoTree) -> RepoTree | None:
    """A tree with no files says nothing about the code: the engine falls back instead."""
    return tree if tree.paths else None


class TreeCache:
    """The default branch's tree per repository, in the store; fetched when missing or stale.

    Parsed trees are kept in memory by (repository, tree sha), so a warm read costs one
    small row lookup; store calls of async code run on the database thread when one is
    given (the service's), else on a worker thread.
    """

    def __init__(
        self,
        store: TreeStore,
        *,
        database: DatabaseThread | None = None,
        log: logging.Logger = log,
    ) -> None:
        self._store = store
        self._off_loop: Callable[..., Awaitable[Any]] = (
            database.run if database is not None else asyncio.to_thread
        )
        self._log = log
        self._parsed: dict[tuple[str, str], RepoTree] = {}

    def _tree(self, row: TreeRow) -> RepoTree:
        key = (row.repo, row.sha)
        tree = self._parsed.get(key)
        if tree is None:
            tree = RepoTree.from_row(row)
            if len(self._parsed) >= MAX_PARSED:
                self._parsed.pop(next(iter(self._parsed)))
            self._parsed[key] = tree
        return tree

    def cached(self, repo: str) -> RepoTree | None:
        """The stored tree, fresh or stale, with no request (offline triage uses this)."""
        row = self._store.get(repo)
        return _usable(self._tree(row)) if row else None

    def put(self, tree: RepoTree, *, etag: str | None = None) -> None:
        """Store a tree (the sync, an import, or a fetch)."""
        self._store.put(tree.to_row(etag))
        self._parsed[(tree.repo, tree.sha)] = tree

    async def on_push(self, payload: Mapping[str, Any]) -> bool:
        """Mark the stored tree stale after a push to the default branch; True if it was."""
        pushed = push_tree_sha(payload)
        if pushed is None:
            return False
        repo, tree_sha = pushed
        stale: bool = await self._off_loop(self._store.mark_stale, repo, tree_sha or None)
        return stale

    async def get(self, gh: GitHubClient, repo: str) -> RepoTree | None:
        """The tree: no request when fresh, one (often a 304) when stale or missing.

        When GitHub cannot answer, the stored copy (even stale) or None; the engine then
        falls back to its name-based rule.
        """
        row: TreeRow | None = await self._off_loop(self._store.get, repo)
        if row is not None and not row.stale:
            return _usable(self._tree(row))
        ref = (row.wanted_sha if row else None) or "HEAD"
        etag = row.etag if row is not None and row.wanted_sha in (None, row.sha) else None
        try:
            fetched = await gh.get_tree(repo, ref, etag=etag)
        except GitHubRequestError as exc:
            if exc.status not in (404, 409) or row is not None:
                self._log.warning("tree of %s unavailable (%s); using the stored copy", repo, exc)
                return _usable(self._tree(row)) if row else None
            # An empty repository (409) or no tree to read (404): remember that, so a warm
            # cache costs no request; a push makes it stale like any other tree.
            self._log.info("tree of %s: none (%s)", repo, exc)
            await self._off_loop(self.put, RepoTree(repo=repo, sha=""))
            return None
        except GitHubUnavailable as exc:
            self._log.warning("tree of %s unavailable (%s); using the stored copy", repo, exc)
            return _usable(self._tree(row)) if row else None
        if fetched is None:  # 304: the stored tree is current
            if row is None:
                return None
            await self._off_loop(self._store.mark_fresh, repo)
            return _usable(self._tree(row))
        payload, new_etag = fetched
        tree = RepoTree.from_api(repo, payload)
        await self._off_loop(self.put, tree, etag=new_etag)
        return tree
