"""`agent-dispatch triage` (offline from the mirror, or live through the App) and `artifacts`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from bot.cli.output import UsageError, emit, emit_json
from bot.config.loader import build_config
from bot.config.repo import RepoConfig
from bot.github.references import parse_named
from bot.github.trees import TreeCache
from bot.mirror.view import MirrorStoreView
from bot.models import Issue, TriageDecision, Verdict
from bot.store.artifacts import ArtifactStore
from bot.store.mirror import MirrorStore
from bot.store.trees import TreeStore
from bot.triage.pipeline import Assessment, assess
from bot.triage.render import Renderer


def _fail(message: str) -> int:
    sys.stderr.write(f"agent-dispatch: {message}\n")
    return 2


def _db(args: argparse.Namespace) -> Path:
    from bot.cli.main import load_settings

    return load_settings(args).db


def _local_config(path: Path | None) -> tuple[RepoConfig, tuple[str, ...]]:
    if path is None:
        return RepoConfig(), ()
    loaded = build_config(None, (str(path), path.read_text()))
    return loaded.config, loaded.errors


def _decision_lines(decision: TriageDecision) -> list[str]:
    lines = [
        f"{decision.repo}#{decision.number}: {decision.verdict} "
        f"(score {decision.score:.2f}, mode {decision.mode})",
        f"  {decision.summary}",
    ]
    lines += [f"  {s.weight:+.2f} {s.name}: {s.evidence}" for s in decision.signals]
    if decision.hardware:
        lines.append(f"  hardware: {', '.join(decision.hardware)}")
    lines.append(
        "  existing PRs: "
        + (
            ", ".join(f"#{p.number} ({p.state}, {p.found_by})" for p in decision.existing_prs)
            or "none found"
        )
    )
    lines.append(
        "  related: "
        + (
            ", ".join(f"#{r.number} ({r.state}, {r.score:.2f})" for r in decision.related[:5])
            or "none"
        )
    )
    lines += [f"  missing: {m}" for m in decision.missing]
    return lines


def cmd_triage(args: argparse.Namespace) -> int:
    if not args.offline and (args.all or args.comment):
        return _fail("--all and --comment work with --offline (live triage posts the comment)")
    if args.verdict and not args.all:
        return _fail("--verdict filters the table of --all")
    if args.all:
        if args.target is not None:
            return _fail(f"--all triages every issue: drop {args.target!r}")
        if args.comment or args.prompt_out:
            return _fail("--comment and --prompt-out take one issue number, not --all")
        return triage_all(args)
    if args.target is None:
        return _fail("name an issue: OWNER/NAME#N, or a number with --offline (or --all)")
    if args.offline:
        return triage_offline(args)
    named = parse_named(args.target)
    if named is None:
        return _fail(f"expected OWNER/NAME#N, got {args.target!r} (or use --offline NUMBER)")
    return asyncio.run(triage_live(args, *named))


def _offline_repo(store: MirrorStore, args: argparse.Namespace) -> str:
    """--repo, or the only repository the mirror holds."""
    repos = store.repos()
    repo: str | None = args.repo or (repos[0] if len(repos) == 1 else None)
    if repo is None:
        raise UsageError(
            "the mirror holds "
            + (
                f"several repositories ({', '.join(repos)}): pass --repo"
                if repos
                else "no issues: run `issues import` or `sync` first"
            )
        )
    return repo


def _offline_config(args: argparse.Namespace) -> tuple[RepoConfig, tuple[str, ...]]:
    config, errors = _local_config(args.config)
    for error in errors:
        sys.stderr.write(f"agent-dispatch: config ignored: {error}\n")
    return config, errors


def triage_offline(args: argparse.Namespace) -> int:
    if not args.target.isdigit():
        return _fail(f"--offline takes an issue number, got {args.target!r}")
    store = MirrorStore(_db(args))
    repo = _offline_repo(store, args)
    issue = store.get_issue(repo, int(args.target))
    if issue is None:
        return _fail(f"{repo}#{args.target} is not in the mirror")
    config, errors = _offline_config(args)
    # Offline: the tree the mirror carries (a sync or a live triage stored it), if any.
    tree = TreeCache(TreeStore(_db(args))).cached(repo)
    assessment = assess(issue, MirrorStoreView(store), config, bot_login=None, tree=tree)
    decision = assessment.decision
    if args.prompt_out or args.comment:
        rendered = Renderer().prompt(assessment.prompt)
    if args.prompt_out:
        args.prompt_out.write_text(rendered.text)
    if args.comment:
        body = offline_comment(
            args, assessment, rendered.text, [*errors, *rendered.override_errors]
        )
        if args.json:
            emit_json(decision.model_dump(mode="json") | {"comment": body})
        else:
            sys.stdout.write(body)
        return 0
    if args.json:
        emit_json(decision.model_dump(mode="json"))
    else:
        for line in _decision_lines(decision):
            emit(line)
        if args.prompt_out:
            emit(f"  prompt written to {args.prompt_out} ({len(rendered.text)} characters)")
    return 0


def offline_comment(
    args: argparse.Namespace, assessment: Assessment, prompt_text: str, errors: list[str]
) -> str:
    """The triage comment the live job would post now: the same context and template, the
    link to the prompt version it would store (signed with the service's link key), and
    what dispatch runs the database records for the issue. Nothing is stored or sent."""
    import hashlib
    import time

    from bot.cli.main import load_settings
    from bot.store.artifacts import ArtifactRef
    from bot.store.runs import DispatchRuns
    from bot.triage.comment import comment_context, followup_lines
    from bot.web.links import LinkSigner

    settings = load_settings(args)
    decision = assessment.decision
    repo, number = decision.repo, decision.number
    digest = hashlib.sha256(prompt_text.encode()).hexdigest()
    latest = ArtifactStore(settings.db).latest(repo, number)
    artifact = (
        latest
        if latest is not None and latest.sha256 == digest
        else ArtifactRef(
            repo=repo,
            number=number,
            version=latest.version + 1 if latest else 1,
            sha256=digest,
            size=len(prompt_text.encode()),
            created_at=time.time(),
        )
    )
    links = LinkSigner.from_settings(settings)
    expires = links.expires_for(artifact, now=artifact.created_at)
    runs = DispatchRuns(settings.db).runs_for_issue(repo, number)
    context = comment_context(
        decision,
        assessment.config,
        errors=errors,
        artifact=artifact,
        artifact_url=links.url(artifact, expires=expires),
        expires=expires,
        followups=followup_lines(
            [i for run in reversed(runs) for i in run.items if i.number == number]
        ),
    )
    return Renderer().comment(context)


def top_reason(decision: TriageDecision) -> str:
    """The comment's first reason for the verdict, on one line ('' when it gives none)."""
    from bot.triage.comment import reasons

    found = reasons(decision, limit=1)
    if not found:
        return ""
    quote = " ".join(found[0].quote.split())
    return f'{found[0].text} "{quote}"' if quote else found[0].text


def triage_all(args: argparse.Namespace) -> int:
    """Every mirrored issue of the repository (not PRs), by number: verdict, mode, score and
    top reason; a progress line on stderr when it is a terminal."""
    store = MirrorStore(_db(args))
    repo = _offline_repo(store, args)
    config, _ = _offline_config(args)
    tree = TreeCache(TreeStore(_db(args))).cached(repo)
    view = MirrorStoreView(store)
    numbers = sorted(i.number for i in store.list_issues(repo, limit=None))
    progress = sys.stderr.isatty()
    rows: list[dict[str, Any]] = []
    for done, number in enumerate(numbers, 1):
        issue: Issue | None = store.get_issue(repo, number)
        if progress:
            sys.stderr.write(f"\rtriaging {repo}: {done}/{len(numbers)}")
            sys.stderr.flush()
        if issue is None:
            continue
        decision = assess(issue, view, config, bot_login=None, tree=tree).decision
        if args.verdict and decision.verdict != args.verdict:
            continue
        rows.append(
            {
                "repo": repo,
                "number": number,
                "verdict": decision.verdict,
                "mode": decision.mode,
                "score": round(decision.score, 2),
                "reason": top_reason(decision),
            }
        )
    if progress:
        sys.stderr.write("\r\033[K")
    if args.json:
        emit_json(rows)
        return 0
    for row in rows:
        emit(
            f"#{row['number']:<6} {row['verdict']:<15} {row['mode']:<18} "
            f"{row['score']:5.2f}  {row['reason']}"
        )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    emit(
        f"{len(rows)} of {len(numbers)} issues of {repo}"
        + (": " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) if counts else "")
    )
    return 0


async def triage_live(args: argparse.Namespace, repo: str, number: int) -> int:
    import aiohttp

    from bot.cli.main import load_settings
    from bot.service import build_services
    from bot.triage.job import TriageJob

    settings = load_settings(args)
    settings.require_webhook_secret()
    async with aiohttp.ClientSession() as session:
        services = build_services(settings, session, record_writes=args.dry_run)
        if settings.dry_run:
            gh = await services.github.for_installation(
                0, idempotency_prefix=f"cli-{datetime.now(UTC).timestamp()}"
            )
        else:
            installation = await services.github.app_client().get_repo_installation(repo)
            gh = await services.github.for_installation(
                int(installation["id"]), idempotency_prefix=f"cli-{datetime.now(UTC).timestamp()}"
            )
        loaded = await services.configs.load(gh, repo)
        outcome = await TriageJob(services).run(gh, repo, number, loaded=loaded)
    result: dict[str, Any] = outcome.decision.model_dump(mode="json") | {
        "artifact_version": outcome.artifact.version,
        "artifact_url": outcome.artifact_url,
        "comment": outcome.comment_action,
        "recorded_not_sent": settings.dry_run or args.dry_run,
    }
    if args.json:
        emit_json(result)
    else:
        for line in _decision_lines(outcome.decision):
            emit(line)
        emit(f"  prompt v{outcome.artifact.version}: {outcome.artifact_url}")
        emit(
            f"  comment {outcome.comment_action}"
            + (" (recorded, not sent: see `actions list`)" if result["recorded_not_sent"] else "")
        )
    return 0


def cmd_artifacts_list(args: argparse.Namespace) -> int:
    refs = ArtifactStore(_db(args)).list(args.repo, args.number, limit=args.limit)
    if args.json:
        emit_json([r.model_dump() for r in refs])
        return 0
    if not refs:
        emit("no artifacts")
    for r in refs:
        when = datetime.fromtimestamp(r.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        emit(f"{r.repo}#{r.number} v{r.version}  {r.size:>7} bytes  {when}  sha256:{r.sha256[:12]}")
    return 0


def cmd_artifacts_get(args: argparse.Namespace) -> int:
    named = parse_named(args.issue)
    if named is None:
        return _fail(f"expected OWNER/NAME#N, got {args.issue!r}")
    store = ArtifactStore(_db(args))
    repo, number = named
    version = args.version
    if version is None:
        latest = store.latest(repo, number)
        if latest is None:
            return _fail(f"no artifact for {args.issue}")
        version = latest.version
    text = store.get(repo, number, version)
    if text is None:
        return _fail(f"no version {version} for {args.issue}")
    sys.stdout.write(text)
    return 0


def cmd_artifacts_revoke(args: argparse.Namespace) -> int:
    """End links: to one issue's prompts, a repository's, or (--all) every link issued."""
    from bot.cli.main import load_settings
    from bot.web.links import rotate_key

    settings = load_settings(args)
    if args.all:
        if settings.artifact_link_key is not None:
            return _fail("BOT_ARTIFACT_LINK_KEY is set: change it and restart to end every link")
        rotate_key(settings.link_key_path)
        emit(
            f"new link key in {settings.link_key_path}: every link issued so far stops "
            "working when the service restarts"
        )
        return 0
    target = args.target or ""
    named = parse_named(target)
    repo, number = named if named else (target, None)
    if "/" not in repo or "#" in repo:
        return _fail("expected OWNER/NAME or OWNER/NAME#N (or --all)")
    covered = ArtifactStore(settings.db).revoke(repo, number)
    emit(
        f"revoked links to {covered} prompt version(s) of {args.target}; "
        "the next triage makes a new version with a new link"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    triage = subparsers.add_parser(
        "triage", help="triage one issue (offline from the mirror, or live)"
    )
    triage.add_argument(
        "target", nargs="?", help="OWNER/NAME#N (live), or an issue number with --offline"
    )
    triage.add_argument(
        "--offline", action="store_true", help="decide from the local mirror, no network"
    )
    triage.add_argument("--repo", help="OWNER/NAME, with --offline when the mirror holds several")
    triage.add_argument(
        "--config", type=Path, help="with --offline: a local agent-dispatch.yml to apply"
    )
    triage.add_argument("--json", action="store_true", help="print the decision as JSON")
    triage.add_argument(
        "--comment",
        action="store_true",
        help="with --offline N: print the triage comment as it would be posted",
    )
    triage.add_argument(
        "--all",
        action="store_true",
        help="with --offline: a table of every mirrored issue (verdict, mode, score, reason)",
    )
    triage.add_argument(
        "--verdict", choices=get_args(Verdict), help="with --all: only issues with this verdict"
    )
    triage.add_argument(
        "--prompt-out", type=Path, help="with --offline: write the prompt file here"
    )
    triage.add_argument(
        "--dry-run",
        action="store_true",
        help="live: read from GitHub, record writes instead of sending",
    )
    triage.set_defaults(func=cmd_triage)

    artifacts = subparsers.add_parser("artifacts", help="stored prompt files")
    sub = artifacts.add_subparsers(dest="artifacts_command", required=True)
    listing = sub.add_parser("list", help="artifact versions, newest first")
    listing.add_argument("--repo")
    listing.add_argument("--number", type=int)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_artifacts_list)
    get = sub.add_parser("get", help="print one artifact (latest version unless --version)")
    get.add_argument("issue", help="OWNER/NAME#N")
    get.add_argument("--version", type=int)
    get.set_defaults(func=cmd_artifacts_get)
    revoke = sub.add_parser("revoke", help="make links to stored prompts stop working")
    revoke.add_argument("target", nargs="?", help="OWNER/NAME (every issue) or OWNER/NAME#N")
    revoke.add_argument("--all", action="store_true", help="new link key: end every link")
    revoke.set_defaults(func=cmd_artifacts_revoke)
