"""Source context for the prompt: the repository's own lines that the issue points at.

Parse (pure) then act (narrow): `plan_source` reads the issue and the default-branch
tree and decides which files to read; `fetch_source` fetches the ones whose blob is not
cached yet (contents API at the tree's commit); `build_source` quotes the lines around
each pointed line and the definitions of the identifiers the issue names, picks the test
files that cover those modules, and detects the install command and build/test docs.
Nothing here trusts a path from the issue: only paths present in the tree are read.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from bot.github.trees import RepoTree
from bot.models import ExistingPR, Issue, TriageDecision

log = logging.getLogger(__name__)

MAX_FILES = 3
MAX_LINES_PER_FILE = 80
MAX_CHARS_TOTAL = 12_000
MAX_LINE_CHARS = 200
CONTEXT_LINES = 8
MAX_DEFINITION_LINES = 40
MAX_IDENTIFIERS = 8
MAX_TESTS = 4
SCAN_CHARS = 60_000  # of each issue text
SETUP_FILES = ("pyproject.toml", "Makefile")
DOC_CANDIDATES = (
    "CONTRIBUTING.md",
    ".github/CONTRIBUTING.md",
    "docs/CONTRIBUTING.md",
    "CONTRIBUTING.rst",
)
EXTRA_PREFERENCE = ("dev", "test", "tests", "testing")
MAKE_TARGETS = ("install-dev", "dev", "install")

# Bounded quantifiers: linear on hostile text.
_FRAME = re.compile(r'File "([^"\n]{1,300})", line (\d{1,6})(?:, in ([A-Za-z_]\w{0,80}))?')
_PERMALINK = re.compile(
    r"https?://[^\s/]{1,100}/[\w.-]{1,100}/[\w.-]{1,100}/blob/[0-9A-Za-z._-]{1,100}/"
    r"([\w./-]{1,300}?)(?:#L(\d{1,6})(?:-L\d{1,6})?)?(?=[\s)\]>\"'`]|$)"
)
# A path starts after a character no path holds, so a long `a/a/a/...` is tried once.
_PATH = re.compile(
    r"(?<![\w./-])(?:~?/)?(?:[\w.-]{1,80}/){0,16}[\w-][\w.-]{0,80}"
    r"\.(?:py|pyx|pyi|cu|cuh|cpp|cc|c|h|hpp|rs|go|js|ts)(?::(\d{1,6}))?(?![\w])"
)
_BACKTICKED = re.compile(r"`([A-Za-z_][\w.]{2,80})(?:\(\))?`")
_SITE_PACKAGES = re.compile(r"^.*?(?:site|dist)-packages/")
_TEST_FILE = re.compile(r"(?:^|/)(?:test_[\w]+|[\w]+_test)\.py$")


@dataclass(frozen=True)
class Pointer:
    path: str  # as it appears in the repository's tree
    line: int | None
    why: str


@dataclass(frozen=True)
class SourcePlan:
    tree: str  # the default branch's tree sha: what the quotes are read from
    pointers: list[Pointer]
    identifiers: list[str]
    files: list[str]  # quoted files, in order: at most MAX_FILES
    setup_files: list[str]  # pyproject.toml / Makefile when present (install detection)
    docs: str | None  # build/test docs found in the tree
    tests: list[tuple[str, str]]  # (test file, why it covers a pointed module)
    unresolved: list[str]  # paths the issue names that the tree does not hold

    def wanted(self) -> list[str]:
        return [*self.files, *self.setup_files]


@dataclass(frozen=True)
class Excerpt:
    path: str
    tree: str
    start: int  # 1-based, inclusive
    lines: list[str]
    focus: int | None
    why: str

    @property
    def end(self) -> int:
        return self.start + len(self.lines) - 1

    @property
    def ref(self) -> str:
        line = self.focus or self.start
        return f"{self.path}@{self.tree[:12]}:{line}"

    def numbered(self) -> str:
        width = len(str(self.end))
        return "\n".join(
            f"{n:>{width}}{'>' if n == self.focus else ' '} {text}"
            for n, text in enumerate(self.lines, self.start)
        )


@dataclass(frozen=True)
class TestTarget:
    path: str
    k: str | None
    why: str

    def command(self) -> str:
        hint = f' -k "{self.k}"' if self.k else ""
        return f"pytest {self.path} -v --tb=short{hint}"


@dataclass(frozen=True)
class PullContext:
    """What is known of an existing pull request beyond the decision's ExistingPR."""

    number: int
    branch: str | None = None  # its head branch
    files: list[str] | None = None  # paths it changes (PR files API); None: not fetched


@dataclass
class SourceContext:
    """The prompt's view of the repository: the input `Renderer.prompt` takes (pure data)."""

    tree: str | None = None
    excerpts: list[Excerpt] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "path: why it was not quoted"
    unresolved: list[str] = field(default_factory=list)
    tests: list[TestTarget] = field(default_factory=list)
    install: str | None = None
    docs: str | None = None


# -- planning (pure) -------------------------------------------------------------------------


def _texts(issue: Issue) -> list[str]:
    return [issue.title, issue.body, *(c.body for c in issue.comments if not c.author_is_bot)]


def _candidates(issue: Issue) -> list[tuple[str, int | None, str]]:
    """Paths the issue names, best first: traceback frames (deepest first), links, mentions."""
    frames: list[tuple[str, int | None, str]] = []
    others: list[tuple[str, int | None, str]] = []
    for text in _texts(issue):
        text = text[:SCAN_CHARS]
        found = [
            (m.group(1), int(m.group(2)), f"traceback frame in `{m.group(3) or '?'}`")
            for m in _FRAME.finditer(text)
        ]
        frames.extend(reversed(found))
        for m in _PERMALINK.finditer(text):
            others.append(
                (m.group(1), int(m.group(2)) if m.group(2) else None, "permalink in the issue")
            )
        for m in _PATH.finditer(_PERMALINK.sub(" ", _FRAME.sub(" ", text))):
            path = m.group(0).rsplit(":", 1)[0] if m.group(1) else m.group(0)
            line = int(m.group(1)) if m.group(1) else None
            others.append((path, line, "path named in the issue"))
    return frames + others


def identifiers(issue: Issue) -> list[str]:
    """Identifiers named in backticks (`str2optimizer32bit`); of a dotted name, its last part."""
    seen: dict[str, None] = {}
    for text in _texts(issue):
        for m in _BACKTICKED.finditer(text[:SCAN_CHARS]):
            name = m.group(1).rstrip(".").rsplit(".", 1)[-1]
            if len(name) >= 3 and not name.isdigit():
                seen.setdefault(name, None)
    return list(seen)[:MAX_IDENTIFIERS]


def _is_test(path: str) -> bool:
    return bool(_TEST_FILE.search(path)) or "/tests/" in f"/{path}"


def imports_module(text: str, module: str) -> bool:
    """Does a test file import `module` (a tree path such as pkg/backends/cuda/ops.py)?"""
    dotted = module.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    package, _, leaf = dotted.rpartition(".")
    return bool(
        re.search(rf"(?m)^\s*(?:import|from)\s+{re.escape(dotted)}\b", text)
        or (
            package
            and re.search(
                rf"(?m)^\s*from\s+{re.escape(package)}\s+import\b[^\n]*\b{re.escape(leaf)}\b", text
            )
        )
    )


def plan_source(issue: Issue, tree: RepoTree, *, max_files: int = MAX_FILES) -> SourcePlan:
    """Which repository files to quote and read, from the issue and the tree (pure)."""
    pointers: list[Pointer] = []
    unresolved: list[str] = []
    seen: set[tuple[str, int | None]] = set()
    for named, line, why in _candidates(issue):
        resolved = tree.resolve(named)
        if resolved is None:
            if "-packages/" not in named and "/" in named and named not in unresolved:
                unresolved.append(named)
            continue
        if (resolved, line) not in seen:
            seen.add((resolved, line))
            pointers.append(Pointer(resolved, line, why))
    files = list(dict.fromkeys(p.path for p in pointers))[:max_files]
    tests = {f: "the test file the issue points at" for f in files if _is_test(f)}
    for path in files:
        # Named after the module, then after the packages holding it (optim/x.py -> test_optim).
        pure = PurePosixPath(path)
        for name in [pure.stem, *reversed(pure.parent.parts[1:])]:
            for test in tree.tests_for(f"{name}.py"):
                tests.setdefault(test, f"named after `{name}` ({path})")
    docs = next((d for d in DOC_CANDIDATES if d in tree.paths), None)
    if docs is None:
        docs = next(
            (p for p in sorted(tree.paths) if re.fullmatch(r"docs?/[^/]*test[^/]*\.(?:md|rst)", p)),
            None,
        )
    return SourcePlan(
        tree=tree.sha,
        pointers=[p for p in pointers if p.path in files],
        identifiers=identifiers(issue),
        files=files,
        setup_files=[f for f in SETUP_FILES if f in tree.paths],
        docs=docs,
        tests=list(tests.items())[:MAX_TESTS],
        unresolved=unresolved[:5],
    )


# -- quoting (pure) --------------------------------------------------------------------------


def _definition_line(lines: list[str], name: str) -> int | None:
    """0-based line where `name` is defined: def/class, an assignment, or a C-like function."""
    escaped = re.escape(name)
    patterns = (
        rf"^\s*(?:async\s+)?(?:def|class)\s+{escaped}\b",
        rf"^\s*{escaped}\s*(?::[^=\n]{{0,80}})?=(?!=)",
        rf"^[\w:<>*&\s]{{0,80}}\b{escaped}\s*\([^;]*$",
    )
    for pattern in patterns:
        compiled = re.compile(pattern)
        for index, line in enumerate(lines):
            if compiled.match(line[:300]):
                return index
    return None


def _block_end(lines: list[str], start: int) -> int:
    """Last 0-based line of the block starting at `start` (by indentation), capped."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start
    for index in range(start + 1, min(len(lines), start + MAX_DEFINITION_LINES)):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            continue
        if len(line) - len(line.lstrip()) <= indent and stripped[0] not in ")]}":
            break
        end = index
    return end


def _merge(
    windows: list[tuple[int, int, int | None, str]],
) -> list[tuple[int, int, int | None, str]]:
    merged: list[tuple[int, int, int | None, str]] = []
    for start, end, focus, why in sorted(windows):
        if merged and start <= merged[-1][1] + 1:
            s, e, f, w = merged[-1]
            merged[-1] = (s, max(e, end), f or focus, w if why in w else f"{w}; {why}")
        else:
            merged.append((start, end, focus, why))
    return merged


def quote_file(
    path: str, tree: str, text: str, lines_pointed: list[tuple[int, str]], names: list[str]
) -> list[Excerpt]:
    """Excerpts of one file: around each pointed line, and each named identifier's definition."""
    lines = text.splitlines()
    windows: list[tuple[int, int, int | None, str]] = []
    for line, why in lines_pointed:
        if 1 <= line <= len(lines):
            index = line - 1
            windows.append(
                (
                    max(0, index - CONTEXT_LINES),
                    min(len(lines) - 1, index + CONTEXT_LINES),
                    line,
                    why,
                )
            )
    for name in names:
        found = _definition_line(lines, name)
        if found is not None:
            windows.append(
                (max(0, found - 1), _block_end(lines, found), found + 1, f"definition of `{name}`")
            )
    excerpts: list[Excerpt] = []
    budget = MAX_LINES_PER_FILE
    for start, end, focus, why in _merge(windows):
        end = min(end, start + budget - 1)
        if end < start:
            break
        body = [line[:MAX_LINE_CHARS] for line in lines[start : end + 1]]
        excerpts.append(Excerpt(path, tree, start + 1, body, focus, why))
        budget -= len(body)
    if not excerpts and lines:  # pointed at the file without a line: its head
        body = [line[:MAX_LINE_CHARS] for line in lines[: 2 * CONTEXT_LINES]]
        excerpts.append(Excerpt(path, tree, 1, body, None, "start of the file the issue names"))
    return excerpts


def detect_install(texts: dict[str, str]) -> str | None:
    """The install command a person would type, from pyproject extras or a Makefile target."""
    pyproject = texts.get("pyproject.toml")
    if pyproject is not None:
        extras = _pyproject_extras(pyproject)
        chosen = next((e for e in EXTRA_PREFERENCE if e in extras), None)
        return f"pip install -e '.[{chosen}]'" if chosen else "pip install -e ."
    makefile = texts.get("Makefile")
    if makefile is not None:
        targets = set(re.findall(r"(?m)^([\w-]{1,40}):(?!=)", makefile[:100_000]))
        chosen = next((t for t in MAKE_TARGETS if t in targets), None)
        if chosen:
            return f"make {chosen}"
    return None


def _pyproject_extras(text: str) -> list[str]:
    import tomllib

    try:
        data = tomllib.loads(text[:200_000])
    except tomllib.TOMLDecodeError:
        return []
    extras = (data.get("project") or {}).get("optional-dependencies") or {}
    return [str(k) for k in extras] if isinstance(extras, dict) else []


def k_hint(names: list[str]) -> str | None:
    words = [n for n in names if re.fullmatch(r"[A-Za-z_]\w{2,40}", n)][:3]
    return " or ".join(words) or None


def build_source(
    plan: SourcePlan, texts: dict[str, str], failures: dict[str, str]
) -> SourceContext:
    """Quote the fetched files within the caps; name every file that could not be read."""
    excerpts: list[Excerpt] = []
    missing: list[str] = []
    used = 0
    for path in plan.files:
        text = texts.get(path)
        if text is None:
            missing.append(f"{path}: {failures.get(path, 'not fetched')}")
            continue
        pointed = [(p.line, p.why) for p in plan.pointers if p.path == path and p.line]
        for excerpt in quote_file(path, plan.tree, text, pointed, plan.identifiers):
            size = sum(len(line) + 8 for line in excerpt.lines)
            if used + size > MAX_CHARS_TOTAL:
                missing.append(f"{path}:{excerpt.start}-{excerpt.end}: over the quote budget")
                continue
            used += size
            excerpts.append(excerpt)
    hint = k_hint(plan.identifiers)
    tests = [TestTarget(path, hint, why) for path, why in plan.tests]
    known = {t.path for t in tests}
    for path, text in texts.items():  # cached test files that import a pointed module
        if (
            _is_test(path)
            and path not in known
            and any(imports_module(text, module) for module in plan.files)
        ):
            tests.append(TestTarget(path, hint, "imports a pointed module (read before)"))
    return SourceContext(
        tree=plan.tree,
        excerpts=excerpts,
        missing=missing,
        unresolved=plan.unresolved,
        tests=tests[:MAX_TESTS],
        install=detect_install(texts),
        docs=plan.docs,
    )


# -- fetching (thin I/O) ---------------------------------------------------------------------


class BlobReader(Protocol):
    async def get_blob_text(
        self, repo: str, path: str, ref: str | None = None
    ) -> tuple[str, str] | None: ...


class PullReader(BlobReader, Protocol):
    async def list_pull_files(self, repo: str, number: int, *, limit: int = 100) -> list[str]: ...


class BlobCache(Protocol):
    async def get_many(self, keys: Sequence[str]) -> dict[str, str]: ...

    async def put(self, keys: Sequence[str], text: str) -> None: ...


def cache_key(tree: RepoTree, path: str) -> str:
    """A blob's sha when the tree lists it (content-addressed); else the tree sha and path."""
    return tree.blobs.get(path) or f"{tree.sha}:{path}"


async def fetch_source(
    gh: BlobReader,
    cache: BlobCache,
    tree: RepoTree,
    plan: SourcePlan,
) -> tuple[dict[str, str], dict[str, str]]:
    """Texts of the planned files (path -> text), from the cache or the contents API.

    When the tree lists blob shas, a file a push left unchanged keeps its blob sha and is
    not fetched again. Returns (texts, failures); a failure
    names the file and why, and the prompt shows it.
    """
    keys = {path: cache_key(tree, path) for path in plan.wanted()}
    # Test files read before are scanned for imports of the pointed modules (no request).
    tests = {p: cache_key(tree, p) for p in tree.paths if _is_test(p) and p.endswith(".py")}
    cached = await cache.get_many([*keys.values(), *tests.values()])
    texts = {path: cached[key] for path, key in (keys | tests).items() if key in cached}
    failures: dict[str, str] = {}

    async def one(path: str) -> None:
        try:
            got = await gh.get_blob_text(tree.repo, path)
        except Exception as exc:  # a file we cannot read is named, not fatal to the triage
            log.warning("could not fetch %s:%s: %s", tree.repo, path, exc)
            failures[path] = f"could not be fetched ({type(exc).__name__})"
            return
        if got is None:
            failures[path] = "not a regular text file on the default branch (or over 1 MB)"
            return
        text, sha = got
        texts[path] = text
        await cache.put([keys[path], sha], text)

    await asyncio.gather(*(one(path) for path in keys if path not in texts))
    return texts, failures


def pull_to_read(decision: TriageDecision) -> ExistingPR | None:
    """The pull request the prompt is framed around: an open one, else a merged one."""
    for state in ("open", "merged"):
        for pr in decision.existing_prs:
            if pr.state == state:
                return pr
    return None


async def gather_context(
    gh: PullReader,
    cache: BlobCache,
    tree: RepoTree | None,
    issue: Issue,
    decision: TriageDecision,
) -> tuple[SourceContext, list[PullContext]]:
    """The I/O before rendering: quoted source (when the tree is known) and the PR's files.

    Costs at most MAX_FILES + len(SETUP_FILES) contents requests (none for cached blobs)
    and one PR files request, all in parallel.
    """
    pr = pull_to_read(decision)

    async def pull_files() -> list[PullContext]:
        if pr is None:
            return []
        branch = next(
            (
                e.source_head_ref
                for e in issue.timeline
                if e.source_number == pr.number and e.source_head_ref
            ),
            None,
        )
        try:
            files: list[str] | None = await gh.list_pull_files(issue.repo, pr.number)
        except Exception as exc:  # the prompt says the files are unknown
            log.warning("files of PR #%d unavailable: %s", pr.number, exc)
            files = None
        return [PullContext(pr.number, branch, files)]

    async def source() -> SourceContext:
        if tree is None:
            return SourceContext()
        # Parsing issue text and quoting files is CPU work: off the event loop.
        plan = await asyncio.to_thread(plan_source, issue, tree)
        texts, failures = await fetch_source(gh, cache, tree, plan)
        return await asyncio.to_thread(build_source, plan, texts, failures)

    quoted, pulls = await asyncio.gather(source(), pull_files())
    return quoted, pulls
