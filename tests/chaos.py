"""Fault injection against the real service: `agent-dispatch serve` in a subprocess, the
fake GitHub and fake Slack misbehaving, SIGKILLs at random and at chosen points.

`run(plan)` streams signed deliveries (triage labels, edits, dispatch labels, `/dispatch`
commands) and malformed requests at the service while GitHub fails a share of requests
(5xx, applied-then-502, resets, secondary rate limits), Slack has an outage, and the
service is killed `plan.kills` times: at random moments and, through `BOT_CRASHPOINTS`,
just before and just after GitHub writes and Slack posts and inside group commits. Each
time it is restarted on the same database; a delivery whose request failed because the
service was down is sent again (as GitHub's redelivery would). At the end it checks:

- lost: an acknowledged delivery not done or deliberately ignored; a triaged issue with
  no triage comment; a dispatch with no Slack message
- doubled: a second triage or dispatch comment on an issue; a second Slack message of one
  notice
- 5xx: any 5xx answer, for any input
- dead_good: a dead letter for a well-formed delivery

Used by tests/test_chaos.py (short form) and bench/chaos.py (long form).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.dispatch.job import DISPATCH_MARKER_PREFIX
from bot.triage.render import COMMENT_MARKER_PREFIX
from bot.web.intake import signature_for
from tests.fakegithub import FakeGitHub
from tests.fakeslack import FakeSlack
from tests.service_fixtures import example, seed
from tests.shared_data import data_file

REPO = "huggingface/peft"  # the seeded issue's own repository (its package paths)
MAINTAINER = "maint"
CONFIG = "dispatch:\n  batch_window_seconds: 0\n  max_in_flight: 1000\n"
TARGETED = (
    "slack_post:0.15,slack_posted:0.6,github_write:0.02,github_written:0.03,group_commit:0.01"
)


@dataclass
class Plan:
    issues: int = 8
    deliveries: int = 40  # well-formed ones
    malformed: int = 40
    kills: int = 6
    server_errors: float = 0.2  # GitHub: share of requests answered 5xx (not applied)
    applied: float = 0.25  # GitHub: share of writes applied, then answered 502
    resets: float = 0.02
    secondary: float = 0.02
    slack_outage: float = 6.0  # seconds, starting a quarter into the stream
    targeted: str = TARGETED
    kill_every: tuple[float, float] = (1.5, 5.0)  # random kills land this long after start
    pace: float = 0.05  # seconds between deliveries
    settle_timeout: float = 180.0
    seed: int = 1


@dataclass
class Result:
    lost: int = 0
    doubled: int = 0
    server_errors: int = 0
    dead_good: int = 0
    kills: int = 0
    targeted_kills: int = 0
    kills_at: Counter[str] = field(default_factory=Counter)
    acknowledged: int = 0
    refused: int = 0
    comments: int = 0
    slack_messages: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"lost {self.lost}, doubled {self.doubled}, 5xx {self.server_errors}"


@dataclass
class _Delivery:
    id: str
    event: str
    body: bytes
    signed: bool = True
    good: bool = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _real_issues() -> list[dict[str, Any]]:
    """Distinct real issues (so triage sees no duplicates), the actionable #436 first."""
    export = json.loads(data_file("peft.export.json").read_text())
    issues = [
        i
        for i in export["open_issues"] + export["closed_issues"]
        if i["body"] and len(i["body"]) > 400
    ]
    issues.sort(key=lambda i: i["number"] != 436)
    return issues * 4


def _payload(name: str, number: int, **changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(example(name))
    payload["repository"]["full_name"] = REPO
    payload["repository"]["name"] = REPO.split("/")[1]
    payload["installation"] = {"id": 1}
    payload["issue"]["number"] = number
    payload["issue"].pop("pull_request", None)
    payload.update(changes)
    return payload


def _by(payload: dict[str, Any], login: str) -> dict[str, Any]:
    payload["sender"] = {"login": login, "type": "User", "id": 7}
    return payload


def _stream(plan: Plan, rng: random.Random) -> tuple[list[_Delivery], set[int], list[list[int]]]:
    """Well-formed deliveries (in order per issue), the dispatched issues and the commands."""
    numbers = list(range(1, plan.issues + 1))
    by_label = set(numbers[: len(numbers) // 2])
    commanded = [n for n in numbers if n not in by_label]
    commands = [commanded[i : i + 2] for i in range(0, len(commanded), 2)]
    out: list[_Delivery] = []

    def add(event: str, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        out.append(_Delivery(f"chaos-{len(out):04d}", event, body))

    for n in numbers:
        add("issues", _by(_payload("issues.labeled", n, label={"name": "agent-ready"}), "octocat"))
    for n in sorted(by_label):
        add("issues", _by(_payload("issues.labeled", n, label={"name": "dispatch"}), MAINTAINER))
    comment_id = 50_000
    for group in commands:
        comment_id += 1
        text = "/dispatch force " + " ".join(f"#{n}" for n in group)
        payload = _payload("issue_comment.created", group[0])
        payload["comment"].update({"id": comment_id, "body": text})
        payload["comment"]["user"] = {"login": MAINTAINER, "type": "User", "id": 7}
        add("issue_comment", _by(payload, MAINTAINER))
    prs = len(by_label) + len(commands)
    while len(out) < plan.deliveries - prs:  # edits and comments that re-triage
        n = rng.choice(numbers)
        if rng.random() < 0.5:
            add("issues", _by(_payload("issues.edited", n), "octocat"))
        else:
            comment_id += 1
            payload = _payload("issue_comment.created", n)
            payload["comment"].update({"id": comment_id, "body": "Same here on 0.14."})
            add("issue_comment", _by(payload, "octocat"))
    for n in sorted(by_label) + [
        g[0] for g in commands
    ]:  # last, an agent's PR each: a thread reply
        pull = copy.deepcopy(example("pull_request.opened"))
        pull["repository"]["full_name"] = REPO
        pull["installation"] = {"id": 1}
        pull["number"] = 1000 + n
        pull["pull_request"].update(
            {"number": 1000 + n, "title": f"Fix #{n}", "body": f"Fixes #{n}", "state": "open"}
        )
        pull["sender"] = {"login": "agent-bot", "type": "Bot", "id": 9}
        add("pull_request", pull)
    return out, by_label, commands


def _malformed(plan: Plan) -> list[_Delivery]:
    labeled = _payload("issues.labeled", 1)
    bodies: list[tuple[bytes, bool]] = [
        (b'{"action": "opened", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", True),
        (json.dumps(labeled | {"repository": {"full_name": "octo/\ud800"}}).encode(), True),
        (json.dumps(labeled | {"installation": {"id": 10**25}}).encode(), True),
        (json.dumps(labeled | {"action": {"a": 1}}).encode(), True),
        (json.dumps(labeled | {"issue": {"number": "1"}}).encode(), True),
        (json.dumps(labeled | {"sender": ["x"]}).encode(), True),
        (b'{"action": "opened", "installation": {"id": NaN}}', True),
        (b'{"truncated": ', True),
        (b"[1, 2, 3]", True),
        (b"\xff\xfe not utf-8", True),
        (json.dumps(labeled).encode(), False),  # bad signature
    ]
    return [
        _Delivery(
            f"odd-{i:04d}", "issues", bodies[i % len(bodies)][0], bodies[i % len(bodies)][1], False
        )
        for i in range(plan.malformed)
    ]


class _Service:
    """The `serve` subprocess, restarted on the same database after every kill."""

    def __init__(self, workdir: Path, env: dict[str, str], port: int) -> None:
        self.workdir = workdir
        self.env = env
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, crashpoints: str) -> None:
        env = {**self.env, "BOT_CRASHPOINTS": crashpoints}
        self.starts += 1
        log = open(self.workdir / "serve.log", "ab")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=log,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _rows(db: Path, sql: str) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _settled(db: Path, acknowledged: set[str]) -> bool:
    deliveries = {r["id"]: r["status"] for r in _rows(db, "SELECT id, status FROM deliveries")}
    if any(deliveries.get(i) not in ("done", "ignored", "dead") for i in acknowledged):
        return False
    waiting = _rows(db, "SELECT id FROM outbox_messages WHERE status NOT IN ('sent', 'dead')")
    return not waiting


async def run(plan: Plan, workdir: Path, *, log: Any = None) -> Result:
    """One fault-injection run; `workdir` holds the database and the service's log."""
    say = log or (lambda *_: None)
    rng = random.Random(plan.seed)
    started = time.monotonic()
    result = Result()
    good, by_label, commands = _stream(plan, rng)
    odd = _malformed(plan)
    deliveries = good + odd
    # Malformed ones land in between (sharing group commits with good ones); the good
    # ones keep their order, so an issue is labelled before it is edited.
    shuffled = sorted(deliveries, key=lambda d: rng.random())
    in_order = iter(good)
    order = [next(in_order) if d.good else d for d in shuffled]

    with FakeGitHub() as github, FakeSlack() as slack:
        github.add_repo(REPO)
        for n, raw in zip(range(1, plan.issues + 1), _real_issues(), strict=False):
            seed(github, raw | {"number": n, "state": "open"}, repo=REPO)
        github.set_permission(REPO, MAINTAINER, "maintain")
        github.set_permission(REPO, "Codertocat", "write")  # the agent's PRs' author
        github.set_file(REPO, ".github/agent-dispatch.yml", CONFIG)
        port = _free_port()
        env = {
            **os.environ,
            "BOT_WEBHOOK_SECRET": github.webhook_secret,
            "BOT_APP_ID": str(github.app_id),
            "BOT_PRIVATE_KEY": github.private_key_pem,
            "BOT_GITHUB_API_URL": github.url,
            "BOT_SLACK_TOKEN": slack.token,
            "BOT_SLACK_API_URL": slack.api_url,
            "BOT_SLACK_CHANNEL": "C0DISPATCH",
            "BOT_DB": str(workdir / "bot.sqlite3"),
            "BOT_PORT": str(port),
            "BOT_WORKERS": "4",
            "BOT_DEBOUNCE_SECONDS": "0.2",
            "BOT_RETRY_BASE_SECONDS": "0.3",
            "BOT_REDELIVERY_INTERVAL_MINUTES": "0",
            "BOT_LOG_LEVEL": "INFO",
        }
        env.pop("BOT_CRASHPOINTS", None)
        service = _Service(workdir, env, port)
        github.chaos(
            server_errors=plan.server_errors,
            applied=plan.applied,
            resets=plan.resets,
            secondary=plan.secondary,
            max_delay=0.02,
            seed=plan.seed,
        )
        acknowledged: set[str] = set()
        streaming = asyncio.Event()
        done_streaming = asyncio.Event()
        statuses: Counter[int] = Counter()

        async def supervise() -> None:
            while True:
                calm = result.kills >= plan.kills
                service.start("" if calm else plan.targeted)
                # The first half of the kills land at random moments; the rest are left to
                # the crash points (a random one only if none is reached for a while).
                timer = rng.uniform(*plan.kill_every)
                if result.kills >= plan.kills // 2:
                    timer *= 4
                begun = time.monotonic()
                while service.alive():
                    if not calm and time.monotonic() - begun > timer:
                        service.kill()
                        result.kills += 1
                        say(f"kill {result.kills} (random, after {timer:.1f}s)")
                        break
                    await asyncio.sleep(0.05)
                else:
                    assert service.process is not None
                    if service.process.returncode == -signal.SIGKILL:
                        result.kills += 1
                        result.targeted_kills += 1
                        say(f"kill {result.kills} (at a crash point)")
                    else:
                        raise RuntimeError(
                            f"serve exited with {service.process.returncode}; see {workdir}/serve.log"
                        )

        async def outage() -> None:
            await streaming.wait()
            await asyncio.sleep(len(order) * plan.pace / 4)
            say(f"Slack down for {plan.slack_outage:.0f}s")
            slack.set_down(True)
            await asyncio.sleep(plan.slack_outage)
            slack.set_down(False)
            say("Slack back")

        async def send(session: aiohttp.ClientSession, d: _Delivery) -> None:
            secret = github.webhook_secret if d.signed else "not-the-secret"
            headers = {
                "X-GitHub-Event": d.event,
                "X-GitHub-Delivery": d.id,
                "X-Hub-Signature-256": signature_for(secret, d.body),
                "Content-Type": "application/json",
            }
            while True:  # until the service answers (GitHub redelivers a failed delivery)
                try:
                    async with session.post(
                        f"http://127.0.0.1:{port}/webhook", data=d.body, headers=headers
                    ) as response:
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    await asyncio.sleep(0.2)
                    continue
                statuses[status] += 1
                if status >= 500:
                    result.server_errors += 1
                    result.problems.append(f"{status} for {d.id}")
                    await asyncio.sleep(0.2)
                    continue
                if status < 300:
                    acknowledged.add(d.id)
                else:
                    result.refused += 1
                return

        async def stream() -> None:
            async with aiohttp.ClientSession() as session:
                streaming.set()
                pending = []
                for d in order:
                    pending.append(asyncio.create_task(send(session, d)))
                    await asyncio.sleep(plan.pace)
                await asyncio.gather(*pending)
            done_streaming.set()

        supervisor = asyncio.create_task(supervise())
        outage_task = asyncio.create_task(outage())
        try:
            await stream()
            await outage_task
            deadline = time.monotonic() + plan.settle_timeout
            db = workdir / "bot.sqlite3"
            while result.kills < plan.kills or not _settled(db, acknowledged):
                if supervisor.done():
                    supervisor.result()  # raises what stopped it
                if time.monotonic() > deadline:
                    result.problems.append("not settled before the timeout")
                    break
                await asyncio.sleep(0.5)
        finally:
            supervisor.cancel()
            outage_task.cancel()
            service.stop()

        for line in (workdir / "serve.log").read_text(errors="replace").splitlines():
            if line.startswith("crashpoint "):
                result.kills_at[line.split()[1].rstrip(":")] += 1
        _check(
            result, workdir / "bot.sqlite3", github, slack, good, acknowledged, by_label, commands
        )
    result.acknowledged = len(acknowledged)
    result.seconds = time.monotonic() - started
    return result


def _check(
    result: Result,
    db: Path,
    github: FakeGitHub,
    slack: FakeSlack,
    good: list[_Delivery],
    acknowledged: set[str],
    by_label: set[int],
    commands: list[list[int]],
) -> None:
    """Count what was lost or doubled (see the module docstring)."""
    rows = {r["id"]: r for r in _rows(db, "SELECT id, status, last_error FROM deliveries")}
    for d in good:
        row = rows.get(d.id)
        if d.id not in acknowledged or row is None or row["status"] not in ("done", "ignored"):
            result.lost += 1
            state = row["status"] if row else "missing"
            result.problems.append(f"delivery {d.id}: {state} {row['last_error'] if row else ''}")
            if row is not None and row["status"] == "dead":
                result.dead_good += 1
    issues = {n for n in range(1, len(github.state.repos[REPO].issues) + 1)}
    for n in sorted(issues):
        bodies = [c["body"] for c in github.comments_of(REPO, n) if c["user"]["type"] == "Bot"]
        result.comments += len(bodies)
        triage = sum(b.startswith(COMMENT_MARKER_PREFIX) for b in bodies)
        dispatch = sum(b.startswith(DISPATCH_MARKER_PREFIX) for b in bodies)
        if triage == 0:
            result.lost += 1
            result.problems.append(f"#{n}: no triage comment")
        if triage > 1 or dispatch > 1:
            result.doubled += max(0, triage - 1) + max(0, dispatch - 1)
            result.problems.append(f"#{n}: {triage} triage and {dispatch} dispatch comments")
    keys = Counter(
        str((m.metadata or {}).get("event_payload", {}).get("key")) for m in slack.messages
    )
    result.slack_messages = len(slack.messages)
    outbox = _rows(db, "SELECT key, kind, status, last_error FROM outbox_messages")
    for row in outbox:
        count = keys.get(row["key"], 0)
        if count != 1:
            result.problems.append(f"Slack has {count} of {row['key']} ({row['status']})")
        if count == 0:
            result.lost += 1
        result.doubled += max(0, count - 1)
    # Every dispatch was planned once; a plan of several issues has one batch notice, a
    # dispatched single issue a notice of its own (a refused one gets a comment instead).
    runs = _rows(db, "SELECT id, source FROM dispatch_runs")
    for source, wanted in (("label", len(by_label)), ("command", len(commands))):
        planned = sum(r["source"] == source for r in runs)
        if planned < wanted:
            result.lost += wanted - planned
            result.problems.append(f"{wanted} dispatches by {source}, {planned} planned")
    items = _rows(db, "SELECT run_id, number, status FROM dispatch_items")
    keys_queued = {r["key"] for r in outbox}
    for run in runs:
        mine = [i for i in items if i["run_id"] == run["id"]]
        if len(mine) > 1:
            wanted_key = f"plan:{REPO}:run{run['id']}"
        elif mine and mine[0]["status"] == "dispatched":
            wanted_key = f"dispatch:{REPO}#{mine[0]['number']}:run{run['id']}"
        else:
            continue
        if wanted_key not in keys_queued:
            result.lost += 1
            result.problems.append(f"run {run['id']}: no {wanted_key} queued")
