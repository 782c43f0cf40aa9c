"""The `issues` command group and `sync`: query and fill the local mirror.

Human output is compact lines for a terminal; `--json` gives scripts the shapes of
DESIGN.md (list/search/top/related: a list of objects; show: one issue object).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.cli.output import UsageError, emit, emit_json
from bot.mirror.formats import ImportFormatError
from bot.mirror.importer import import_file
from bot.mirror.prs import find_existing_prs
from bot.mirror.related import find_related, search_issues
from bot.models import ExistingPR, Issue, RelatedIssue
from bot.store.mirror import MirrorStore

EXCERPT_CHARS = 300
VERBOSE_HELP = "a detail line per result: author, last update, URL (and a body excerpt)"
BRIEF_HELP = "number and title only"


def register(subparsers: argparse._SubParsersAction) -> None:
    issues = subparsers.add_parser("issues", help="query the local issue mirror")
    commands = issues.add_subparsers(dest="issues_command", required=True)

    def detail(parser: argparse.ArgumentParser, *, limit: int) -> None:
        """The same --limit, -v and --brief on every command that lists issues."""
        parser.add_argument("--limit", type=int, default=limit, help=f"at most N (default {limit})")
        amount = parser.add_mutually_exclusive_group()
        amount.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
        amount.add_argument("--brief", action="store_true", help=BRIEF_HELP)

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument(
            "--repo", metavar="OWNER/NAME", help="needed when the mirror holds several repos"
        )
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(func=func)
        return parser

    def filters(
        parser: argparse.ArgumentParser, *, sort: bool = True, state: str | None = None
    ) -> None:
        parser.add_argument("--state", choices=("open", "closed"), default=state)
        parser.add_argument("--label", help="only issues with this label (any case)")
        detail(parser, limit=30)
        parser.add_argument("--all", action="store_true", help="every match (no --limit)")
        if sort:
            parser.add_argument(
                "--unlabeled", action="store_true", help="only issues without labels"
            )
            parser.add_argument(
                "--sort", choices=("updated", "created", "comments", "reactions"), default="updated"
            )

    parser = command("import", "load a coordinator export or REST JSON lines", _import)
    parser.add_argument("file", metavar="FILE")

    filters(command("list", "list mirrored issues (* marks an open linked PR)", _list))
    filters(
        command("top", "open issues people push for most (reactions, comments)", _top),
        sort=False,
        state="open",
    )

    parser = command("show", "one issue with comments, timeline and existing PRs", _show)
    parser.add_argument("number", type=int)

    parser = command("search", "full-text search (title, body, comments)", _search)
    parser.add_argument("query", nargs="+")
    filters(parser, sort=False)
    parser.add_argument("--title-only", action="store_true", help="match titles only")

    for name, nargs, help_text in (
        ("related", None, "issues related to issue NUMBER (--state closed finds prior fixes)"),
        ("batch-related", "+", "group issues that share related issues, then each one's"),
    ):
        parser = command(name, help_text, _related if nargs is None else _batch_related)
        parser.add_argument("number" if nargs is None else "numbers", type=int, nargs=nargs)
        parser.add_argument("--state", choices=("open", "closed"))
        detail(parser, limit=10)
        parser.add_argument("--title-only", action="store_true", help="compare titles only")

    command("stats", "what the mirror holds", _stats)

    sync = subparsers.add_parser("sync", help="backfill the mirror from GitHub (GraphQL)")
    sync.add_argument("repo", metavar="OWNER/NAME")
    sync.add_argument("--page-size", type=int, default=100)
    sync.set_defaults(func=_sync)


def _db_path(args: argparse.Namespace) -> Path:
    """--db, else BOT_DB, else the default (Settings resolves the last two)."""
    if getattr(args, "db", None) is not None:
        return Path(args.db)
    from bot.config.settings import Settings

    return Settings().db


def _with_store(run: Any, *, fills: bool = False) -> Any:
    """Run a command with the mirror open. A command that reads an empty mirror is a
    mistake to name (with the way to fill it), not "no issues match"."""

    def wrapper(args: argparse.Namespace) -> int:
        store = MirrorStore(_db_path(args))
        try:
            if not fills and not store.repos():
                raise UsageError(
                    f"the mirror in {_db_path(args)} holds no issues: fill it with "
                    "`agent-dispatch issues import FILE` or `agent-dispatch sync OWNER/NAME`"
                )
            return int(run(store, args))
        finally:
            store.close()

    return wrapper


def _guarded(run: Any) -> Any:
    return _with_store(run)


def _any_mirror(run: Any) -> Any:
    return _with_store(run, fills=True)


def _repo_for_issue(store: MirrorStore, repo: str | None, number: int) -> str:
    """The repo of issue `number`: --repo, or the one repo of the mirror that holds it."""
    if repo:
        return repo
    holders = store.repos_with_number(number)
    if len(holders) > 1:
        raise UsageError(f"#{number} exists in {', '.join(holders)}: pass --repo OWNER/NAME")
    if not holders:
        raise UsageError(f"#{number} is not in the mirror (run `issues import` or `sync`)")
    return holders[0]


def _issue(store: MirrorStore, repo: str | None, number: int) -> Issue:
    repo = _repo_for_issue(store, repo, number)
    issue = store.get_issue(repo, number)
    if issue is None:
        raise UsageError(f"{repo}#{number} is not in the mirror")
    return issue


def _open_prs(store: MirrorStore, issue: Issue) -> list[ExistingPR]:
    full = issue if issue.timeline else store.get_issue(issue.repo, issue.number) or issue
    return [pr for pr in find_existing_prs(store, full) if pr.state == "open"]


def _summary(store: MirrorStore, issue: Issue, score: float | None = None) -> dict[str, Any]:
    found = {
        "number": issue.number,
        "repo": issue.repo,
        "state": issue.state,
        "title": issue.title,
        "labels": issue.labels,
        "comments": issue.comment_count,
        "reactions": issue.reaction_total,
        "created_at": issue.created_at,
        "updated_at": issue.updated_at,
        "url": issue.url,
        "open_prs": [pr.number for pr in _open_prs(store, issue)],
    }
    if score is not None:
        found["score"] = score
    return found


def _line(item: dict[str, Any], args: argparse.Namespace, *, several_repos: bool) -> str:
    where = f"{item['repo']}#" if several_repos else "#"
    if args.brief:
        return f"{where}{item['number']} {item['title']}"
    marker = "*" if item["open_prs"] else " "
    labels = f" [{', '.join(item['labels'])}]" if item["labels"] else ""
    score = f" {item['score']:6.2f}" if "score" in item else ""
    prs = f"  PR {', '.join(f'#{n}' for n in item['open_prs'])}" if item["open_prs"] else ""
    line = (
        f"{marker}{where}{item['number']:<6} {item['state']:<6}{score} {item['title']}{labels}"
        f"  ({item['comments']} comments, {item['reactions']} reactions){prs}"
    )
    return line


def _print_issues(
    store: MirrorStore,
    issues: list[Issue],
    args: argparse.Namespace,
    scores: list[float] | None = None,
) -> None:
    items = [
        _summary(store, issue, None if scores is None else scores[i])
        for i, issue in enumerate(issues)
    ]
    if args.json:
        emit_json(items)
        return
    if not items:
        emit("no issues match")
        return
    several = len({item["repo"] for item in items}) > 1
    for issue, item in zip(issues, items, strict=True):
        emit(_line(item, args, several_repos=several))
        if args.verbose and not args.brief:
            when = issue.updated_at.date().isoformat() if issue.updated_at else "?"
            emit(f"      by {issue.author or 'ghost'}, updated {when}, {issue.url or ''}")
            excerpt = " ".join(issue.body.split())[:EXCERPT_CHARS]
            if excerpt:
                emit(f"      {excerpt}")


@_any_mirror
def _import(store: MirrorStore, args: argparse.Namespace) -> int:
    try:
        count = import_file(store, args.file)
    except (OSError, ImportFormatError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot import {args.file}: {exc}") from None
    if args.json:
        emit_json({"imported": count, "repos": store.repos()})
    else:
        emit(f"imported {count} issues ({', '.join(store.repos())})")
    return 0


def _limit(args: argparse.Namespace) -> int | None:
    return None if args.all else args.limit


def _say_if_cut(args: argparse.Namespace, shown: int, total: int | None) -> None:
    """Never cut a listing silently: name how many matched and how to see the rest."""
    if args.json or args.all or shown >= (total or 0) and total is not None:
        return
    if total is None:
        emit(f"showing the first {shown}; more match (use --limit N or --all)")
    elif shown < total:
        emit(f"showing {shown} of {total} (use --limit N or --all)")


@_guarded
def _list(store: MirrorStore, args: argparse.Namespace) -> int:
    filters = {"state": args.state, "label": args.label, "unlabeled": args.unlabeled}
    issues = store.list_issues(args.repo, sort=args.sort, limit=_limit(args), **filters)
    _print_issues(store, issues, args)
    _say_if_cut(args, len(issues), store.count_issues(args.repo, **filters))
    return 0


@_guarded
def _top(store: MirrorStore, args: argparse.Namespace) -> int:
    filters = {"state": args.state, "label": args.label}
    issues = store.list_issues(args.repo, sort="priority", limit=_limit(args), **filters)
    _print_issues(store, issues, args)
    _say_if_cut(args, len(issues), store.count_issues(args.repo, **filters))
    return 0


@_guarded
def _search(store: MirrorStore, args: argparse.Namespace) -> int:
    hits = search_issues(
        store,
        " ".join(args.query),
        repo=args.repo,
        state=args.state,
        label=args.label,
        limit=1_000_000 if args.all else args.limit + 1,
        title_only=args.title_only,
    )
    more = not args.all and len(hits) > args.limit
    hits = hits if args.all else hits[: args.limit]
    issues = store.get_issues([rowid for rowid, _ in hits])
    _print_issues(store, issues, args, scores=[score for _, score in hits])
    if more:
        _say_if_cut(args, len(hits), None)
    return 0


def _print_related(issue: Issue, related: list[RelatedIssue], args: argparse.Namespace) -> None:
    if not related:
        emit("  no related issues found")
    for r in related:
        if args.brief:
            emit(f"  #{r.number} {r.title}")
            continue
        emit(f"  #{r.number:<6} {r.state:<6} {r.score:6.2f}  {r.title}")
        emit(f"         matched: {', '.join(r.matched) or '-'}")
        if args.verbose:
            emit(f"         {r.url or '(no URL)'}")


def _related_for(
    store: MirrorStore, args: argparse.Namespace, number: int
) -> tuple[Issue, list[RelatedIssue]]:
    issue = _issue(store, args.repo, number)
    related = find_related(
        store, issue, limit=args.limit, state=args.state, title_only=args.title_only
    )
    return issue, related


@_guarded
def _related(store: MirrorStore, args: argparse.Namespace) -> int:
    issue, related = _related_for(store, args, args.number)
    if args.json:
        emit_json([r.model_dump(mode="json") for r in related])
    else:
        emit(f"#{issue.number} {issue.title}")
        _print_related(issue, related, args)
    return 0


@_guarded
def _batch_related(store: MirrorStore, args: argparse.Namespace) -> int:
    results = [_related_for(store, args, number) for number in args.numbers]
    groups = shared_groups(
        {issue.number: {r.number for r in related} for issue, related in results}
    )
    group_of = {n: i for i, (members, _) in enumerate(groups, 1) for n in members}
    if args.json:
        emit_json(
            [
                {
                    "number": issue.number,
                    "title": issue.title,
                    "group": group_of.get(issue.number),
                    "related": [r.model_dump(mode="json") for r in related],
                }
                for issue, related in results
            ]
        )
        return 0
    titles = {issue.number: issue.title for issue, _ in results}
    for members, shared in groups:
        emit(
            f"together: {', '.join(f'#{n}' for n in members)}"
            f" (shared: {', '.join(f'#{n}' for n in shared) or 'each other'})"
        )
        for n in members:
            emit(f"  #{n} {titles[n]}")
    if groups:
        emit("")
    for issue, related in results:
        emit(f"#{issue.number} {issue.title}")
        _print_related(issue, related, args)
    return 0


def shared_groups(related: dict[int, set[int]]) -> list[tuple[list[int], list[int]]]:
    """Issues that belong together: two are joined when one lists the other as related or
    both list a common issue (transitively). Each group with two or more members, as
    (members, the related issues more than one member lists), in first-seen order."""
    parent = {n: n for n in related}

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    first_lister: dict[int, int] = {}
    for number, others in related.items():
        for other in sorted(others):
            if other in parent:
                parent[root(other)] = root(number)
            if other in first_lister:
                parent[root(first_lister[other])] = root(number)
            first_lister.setdefault(other, number)
    members: dict[int, list[int]] = {}
    for number in related:
        members.setdefault(root(number), []).append(number)
    groups = []
    for group in members.values():
        if len(group) < 2:
            continue
        counts: dict[int, int] = {}
        for number in group:
            for other in related[number] - set(group):
                counts[other] = counts.get(other, 0) + 1
        groups.append((group, sorted(n for n, c in counts.items() if c > 1)))
    return groups


@_guarded
def _show(store: MirrorStore, args: argparse.Namespace) -> int:
    issue = _issue(store, args.repo, args.number)
    prs = find_existing_prs(store, issue)
    if args.json:
        data = issue.model_dump(mode="json")
        data["existing_prs"] = [pr.model_dump(mode="json") for pr in prs]
        emit_json(data)
        return 0
    date = issue.created_at.date().isoformat() if issue.created_at else "?"
    emit(f"{issue.repo}#{issue.number} [{issue.state}] {issue.title}")
    emit(f"by {issue.author or 'ghost'} on {date}; labels: {', '.join(issue.labels) or '-'}")
    if issue.reactions:
        emit("reactions: " + ", ".join(f"{k} {v}" for k, v in sorted(issue.reactions.items())))
    if issue.url:
        emit(issue.url)
    emit("")
    emit(issue.body or "(no description)")
    for comment in issue.comments:
        when = comment.created_at.date().isoformat() if comment.created_at else "?"
        emit(f"\n--- {comment.author or 'ghost'} on {when}")
        emit(comment.body or "(empty)")
    if issue.timeline:
        emit("\ntimeline:")
        for event in issue.timeline:
            what = event.label or (
                f"{event.source_type} #{event.source_number} {event.source_state or ''} {event.source_title or ''}"
                if event.source_number
                else ""
            )
            emit(f"  {event.type} {what}".rstrip())
    emit("\nexisting PRs:" if prs else "\nexisting PRs: none found")
    for pr in prs:
        emit(f"  #{pr.number} {pr.state} (found by {pr.found_by}) {pr.title or ''}".rstrip())
    return 0


@_any_mirror
def _stats(store: MirrorStore, args: argparse.Namespace) -> int:
    stats = store.stats(args.repo)
    if args.json:
        emit_json(stats)
        return 0
    emit(f"repos: {', '.join(stats['repos']) or '-'}")
    emit(f"issues: {stats['issues_open']} open, {stats['issues_closed']} closed")
    emit(
        f"pull requests mirrored: {stats['pull_requests_open']} open, "
        f"{stats['pull_requests_closed']} closed"
    )
    linked = stats["pull_requests_linked"]
    if linked:
        by_state = ", ".join(f"{n} {state}" for state, n in sorted(linked.items()))
        emit(f"pull requests linked from issues: {sum(linked.values())} ({by_state})")
    emit(f"comments: {stats['comments']}")
    emit(f"last update: {stats['last_updated'] or '-'}")
    if stats["labels"]:
        emit("labels: " + ", ".join(f"{name} ({n})" for name, n in stats["labels"].items()))
    for repo, sync in stats["sync"].items():
        status = "in progress" if sync["in_progress"] else f"completed {sync['completed_at']}"
        emit(f"sync {repo}: {status}")
    return 0


class _ProgressBar:
    """`[#####-----] 600/1200 issues` on stderr, only when stderr is a terminal."""

    WIDTH = 30

    def __call__(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // total if total else self.WIDTH
        sys.stderr.write(f"\r[{'#' * filled}{'-' * (self.WIDTH - filled)}] {done}/{total} issues")
        sys.stderr.flush()


async def _run_sync(store: MirrorStore, args: argparse.Namespace) -> int:
    import aiohttp

    from bot.config.settings import Settings
    from bot.github.client import GitHubFactory
    from bot.github.trees import TreeCache
    from bot.mirror.sync import backfill
    from bot.observability.metrics import Metrics
    from bot.store.actions import ActionLog, AsyncActionLog
    from bot.store.thread import DatabaseThread
    from bot.store.trees import TreeStore

    settings = Settings(db=_db_path(args))
    progress = _ProgressBar() if sys.stderr.isatty() else None
    async with aiohttp.ClientSession() as session:
        database = DatabaseThread()
        recorder = AsyncActionLog(ActionLog(settings.db), database) if settings.dry_run else None
        factory = GitHubFactory(settings, session, Metrics(), recorder)
        if settings.dry_run:
            client = await factory.for_installation(0)
        else:
            installation = await factory.app_client().get_repo_installation(args.repo)
            client = await factory.for_installation(int(installation["id"]))
        try:
            count = await backfill(
                client, store, args.repo, page_size=args.page_size, progress=progress
            )
            # The default branch's tree too, so offline triage checks code pointers against it.
            tree = await TreeCache(TreeStore(settings.db), database=database).get(client, args.repo)
        finally:
            if recorder is not None:
                recorder.close()
            database.close()
    if progress is not None:
        sys.stderr.write("\n")
    emit(f"synced {count} issues of {args.repo}")
    if tree is not None:
        emit(
            f"default branch tree: {len(tree.paths)} files, packages {', '.join(tree.packages) or 'none'}"
        )
    return 0


@_any_mirror
def _sync(store: MirrorStore, args: argparse.Namespace) -> int:
    if "/" not in args.repo:
        raise UsageError(f"sync takes OWNER/NAME (e.g. huggingface/peft), not {args.repo!r}")
    import asyncio

    return asyncio.run(_run_sync(store, args))
