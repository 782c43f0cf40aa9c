"""A deterministic database for the candidate list and the dashboard (tests and bench/).

Everything is written through the stores' own APIs, so the seeded rows are exactly what
the service writes: mirrored issues and PRs, triage records, prompt versions, dispatch
runs, deliveries and outbox messages.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

from bot.delivery.inbox import Inbox, describe
from bot.dispatch.planner import BatchIssue
from bot.models import Comment, ExistingPR, Issue, Priority, Signal, TriageDecision, Verdict
from bot.notify.outbox import Outbox
from bot.notify.slack import text_reply_message
from bot.store.artifacts import ArtifactStore
from bot.store.mirror import MirrorStore
from bot.store.runs import DispatchRuns
from bot.store.triage_records import TriageRecords

# Ages are relative to now, as the command line and the dashboard compute them.
NOW = datetime.now(UTC).replace(microsecond=0)
# Every verdict, actionable three times as often (as in real repositories).
VERDICTS: tuple[Verdict, ...] = ("actionable", "actionable", *get_args(Verdict))
LABELS = ("bug", "Optimizers", "CUDA", "docs", "high priority", "P2", "enhancement", "blocking")
BOT_LOGIN = "agent-dispatch[bot]"


def decision(
    repo: str,
    number: int,
    verdict: Verdict,
    *,
    score: float = 0.8,
    duplicate_of: int | None = None,
    open_pr: int | None = None,
    mode: str = "fix",
) -> TriageDecision:
    return TriageDecision(
        repo=repo,
        number=number,
        verdict=verdict,
        score=score,
        signals=[
            Signal(name="traceback", weight=0.25, evidence="Traceback (most recent call last)"),
            Signal(name="code_pointer", weight=0.2, evidence="bitsandbytes/functional.py:42"),
            Signal(name="vague_title", weight=-0.1, evidence="title says 'error'"),
        ],
        existing_prs=[ExistingPR(number=open_pr, state="open", found_by="timeline")]
        if open_pr
        else [],
        priority=Priority(score=0.3),
        mode=mode,  # type: ignore[arg-type]
        summary=f"{verdict}: a traceback and a pointer to the code",
        duplicate_of=duplicate_of,
    )


def issue(
    repo: str,
    number: int,
    title: str,
    *,
    body: str = "",
    labels: tuple[str, ...] = (),
    reactions: int = 0,
    comments: int = 0,
    age_days: float = 10,
    state: str = "open",
    state_reason: str | None = None,
    is_pr: bool = False,
    merged: bool | None = None,
    head_ref: str | None = None,
    bot_comment: str | None = None,
) -> Issue:
    created = NOW - timedelta(days=age_days)
    said = [
        Comment(id=number * 100 + i, author=f"user{i}", body=f"comment {i}", created_at=created)
        for i in range(min(comments, 3))
    ]
    if bot_comment is not None:
        said.append(
            Comment(
                id=number * 100 + 99,
                author=BOT_LOGIN,
                author_is_bot=True,
                body=bot_comment,
                created_at=created,
            )
        )
    return Issue(
        repo=repo,
        number=number,
        title=title,
        body=body,
        state=state,  # type: ignore[arg-type]
        state_reason=state_reason,
        is_pull_request=is_pr,
        merged=merged,
        head_ref=head_ref,
        author="reporter",
        created_at=created,
        updated_at=created,
        labels=list(labels),
        reactions={"THUMBS_UP": reactions} if reactions else {},
        comment_count=max(comments, len(said)),
        comments=said,
        url=f"https://github.com/{repo}/{'pull' if is_pr else 'issues'}/{number}",
    )


@dataclass
class Seeded:
    db: Path
    repos: list[str]
    issues: int
    bot_comment_ids: dict[tuple[str, int], int] = field(default_factory=dict)


def seed_bulk(
    db: Path,
    *,
    repos: tuple[str, ...] = ("octo-org/widgets",),
    per_repo: int = 1000,
    triage_share: float = 1.0,
    seed: int = 17,
) -> Seeded:
    """Many issues with a realistic mix of verdicts, reactions, labels, PRs and duplicates."""
    rng = random.Random(seed)
    mirror, records = MirrorStore(db), TriageRecords(db)
    try:
        for repo in repos:
            issues: list[Issue] = []
            decisions: list[TriageDecision] = []
            for number in range(1, per_repo + 1):
                verdict = rng.choice(VERDICTS)
                dependency = rng.randrange(1, per_repo) if rng.random() < 0.03 else None
                is_pr = rng.random() < 0.05
                body = f"Calling `quantize_{number % 50}` fails.\n\nTraceback ...\n" + (
                    f"\nBlocked by #{dependency}\n" if dependency else ""
                )
                dup_target = rng.randrange(1, per_repo) if verdict == "duplicate" else None
                if dup_target:
                    body += f"\nSame as #{dup_target}\n"
                item = issue(
                    repo,
                    number,
                    f"{'Fix' if is_pr else 'Error in'} quantize_{number % 50} (case {number})",
                    body=body + (f"\nFixes #{rng.randrange(1, per_repo)}" if is_pr else ""),
                    labels=tuple(rng.sample(LABELS, rng.choice((0, 1, 1, 2)))),
                    reactions=int(rng.paretovariate(1.5)) - 1,
                    comments=rng.randrange(0, 20),
                    age_days=rng.uniform(1, 900),
                    state="closed" if rng.random() < 0.2 else "open",
                    is_pr=is_pr,
                )
                issues.append(item)
                if not is_pr and rng.random() < triage_share:
                    decisions.append(
                        decision(
                            repo,
                            number,
                            verdict,
                            score=round(rng.uniform(0.3, 1.0), 2),
                            duplicate_of=dup_target,
                        )
                    )
            mirror.upsert_many(issues)
            for d in decisions:
                records.save(d, artifact_version=None, comment_id=None)
    finally:
        mirror.close()
        records.close()
    return Seeded(db=db, repos=list(repos), issues=per_repo * len(repos))


PUBLIC = "octo-org/widgets"
PRIVATE = "octo-org/secret-sauce"


def seed_small(db: Path) -> Seeded:
    """A hand-made database the tests and screenshots read: every page has something."""
    seeded = Seeded(db=db, repos=[PUBLIC, PRIVATE], issues=0)
    mirror, records = MirrorStore(db), TriageRecords(db)
    artifacts, runs, outbox = ArtifactStore(db), DispatchRuns(db), Outbox(db)
    comment = "<!-- agent-dispatch:triage -->\n**Actionable** (0.85): a traceback and a pointer."
    try:
        items = [
            # The ranking's material: #1 loud and labelled, #2 blocks #7, #3 has duplicates.
            issue(
                PUBLIC,
                1,
                "8-bit Adam crashes on CPU",
                labels=("high priority", "bug"),
                reactions=14,
                comments=9,
                age_days=120,
                bot_comment=comment,
            ),
            issue(
                PUBLIC,
                2,
                "LARS missing in str2optimizer32bit",
                reactions=2,
                comments=3,
                age_days=40,
                bot_comment=comment,
            ),
            issue(PUBLIC, 3, "Noisy warning on import", reactions=1, comments=2, age_days=5),
            issue(PUBLIC, 4, "Segfault with ROCm 6", reactions=6, comments=4),
            issue(
                PUBLIC,
                5,
                "Same import warning",
                state="closed",
                state_reason="duplicate",
                body="Duplicate of #3",
            ),
            issue(PUBLIC, 6, "Import warning again", body="Looks like #3 to me"),
            issue(PUBLIC, 7, "Refactor the optimizer registry", body="Blocked by #2"),
            issue(PUBLIC, 8, "Dispatched already", reactions=30),
            issue(PUBLIC, 9, "Has an open PR", reactions=20),
            issue(
                PUBLIC,
                10,
                "Fix the open-PR issue",
                is_pr=True,
                head_ref="fix/issue-9",
                body="Fixes #9",
            ),
            # The dispatched #8's PR, opened two and a half hours after the dispatch.
            issue(
                PUBLIC,
                11,
                "Fix the dispatched issue",
                is_pr=True,
                state="closed",
                merged=True,
                head_ref="fix/issue-8",
                body="Fixes #8",
                age_days=-2.5 / 24,
            ),
            issue(
                PRIVATE, 1, "Secret kernel regression", reactions=3, comments=1, bot_comment=comment
            ),
        ]
        mirror.upsert_many(items)
        verdicts: list[tuple[str, int, Verdict, dict[str, object]]] = [
            (PUBLIC, 1, "actionable", {"score": 0.85}),
            (PUBLIC, 2, "actionable", {"score": 0.7}),
            (PUBLIC, 3, "actionable", {"score": 0.6, "mode": "docs"}),
            (PUBLIC, 4, "needs-hardware", {"score": 0.4}),
            (PUBLIC, 6, "duplicate", {"score": 0.2, "duplicate_of": 3}),
            (PUBLIC, 7, "needs-decision", {"score": 0.3}),
            (PUBLIC, 8, "actionable", {"score": 0.9}),
            (PUBLIC, 9, "actionable", {"score": 0.9}),
            (PRIVATE, 1, "actionable", {"score": 0.75}),
        ]
        for repo, number, verdict, extra in verdicts:
            bot_comment = next(
                (
                    c.id
                    for i in items
                    if (i.repo, i.number) == (repo, number)
                    for c in i.comments
                    if c.author_is_bot
                ),
                None,
            )
            version = None
            if verdict == "actionable":
                artifacts.put(repo, number, f"# Issue {number}\n\nFirst prompt.\nSetup: pip\n")
                version = artifacts.put(
                    repo, number, f"# Issue {number}\n\nSecond prompt.\nSetup: pip\nTests: pytest\n"
                ).version
            records.save(
                decision(repo, number, verdict, **extra),  # type: ignore[arg-type]
                artifact_version=version,
                comment_id=bot_comment,
            )
            if bot_comment is not None:
                seeded.bot_comment_ids[(repo, number)] = bot_comment
        started = runs.start_run(
            PUBLIC,
            [BatchIssue(number=8)],
            max_in_flight=3,
            key="seed:1",
            source="label",
            requested_by="maintainer",
        )
        runs.finish_issue(PUBLIC, 8, merged=True, max_in_flight=3, pr_number=11)
        assert started.created
        sent = outbox.enqueue(
            key="seed:sent",
            kind="dispatch",
            repo=PUBLIC,
            subjects=[8],
            message=text_reply_message("Dispatched #8"),
            channel="#agents",
        )
        outbox.mark_sent(sent.id, channel="C1", ts="1.000001", thread_ts="1.000001")
        dead = outbox.enqueue(
            key="seed:dead",
            kind="dispatch",
            repo=PUBLIC,
            message=text_reply_message("Dispatched #2"),
            channel="#agents",
        )
        outbox.mark_dead(dead.id, "Slack error: invalid_auth (HTTP 200) (after 5 attempts)")
        outbox.enqueue(
            key="seed:pending",
            kind="dispatch",
            repo=PUBLIC,
            message=text_reply_message("Dispatched #3"),
            channel="#agents",
        )
    finally:
        for store in (mirror, records, artifacts, runs, outbox):
            store.close()
    # A loop of its own on a thread of its own: callers may be inside a running loop.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, seed_deliveries(db)).result()
    seeded.issues = len(items)
    return seeded


async def seed_deliveries(db: Path, *, count: int = 24, dead: int = 2) -> None:
    """Deliveries over the last day: most done, `dead` dead letters, one pending."""
    inbox = Inbox(db)
    now = time.time()
    try:
        for n in range(count):
            payload = {
                "action": "labeled",
                "issue": {"number": 1 + n % 3},
                "repository": {"full_name": PUBLIC},
                "installation": {"id": 1},
            }
            body = json.dumps(payload).encode()
            at = now - (count - n) * 3600 + 60
            await inbox.add(describe("issues", payload, f"seed-{n}", body, now=at, delay=0))
        claimed = await inbox.claim()
        while claimed:
            for index, delivery in enumerate(claimed):
                failing = int(delivery.id.split("-")[1]) < dead
                await inbox.finish(
                    [delivery.id],
                    "dead" if failing else "done",
                    "GitHub answered 502 five times" if failing and index == 0 else None,
                )
            for delivery in claimed:
                inbox.release(delivery.subject)
            claimed = await inbox.claim()
        pending = {"action": "opened", "issue": {"number": 3}, "repository": {"full_name": PUBLIC}}
        await inbox.add(
            describe(
                "issues", pending, "seed-pending", json.dumps(pending).encode(), now=now, delay=3600
            )
        )
    finally:
        await inbox.close()
