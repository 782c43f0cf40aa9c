"""The SQLite issue mirror: issues, PRs, comments, labels, timeline, full-text index.

Every query the coordinator used to send to GitHub's search API is answered here in
milliseconds. Tables carry the `mirror_` prefix in the bot's one database file. All
stored text is untrusted: SQL is parameterised and full-text queries are built by
`fts_phrase` from quoted tokens, so issue text can never be query syntax. The ranking of
related issues and PR detection live in bot.mirror; this module answers their queries.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.mirror.prs import issue_references
from bot.mirror.related import error_signatures, index_text
from bot.models import Comment, Issue, TimelineEvent
from bot.store.db import connect, transaction
from bot.store.thread import AsyncStore

SORT_COLUMNS = {
    "updated": "i.updated_at DESC",
    "created": "i.created_at DESC",
    "comments": "i.comment_count DESC",
    "reactions": "i.reaction_total DESC",
    # `issues top`: what people push for (reactions) and talk about (comments).
    "priority": "(2 * i.reaction_total + i.comment_count) DESC",
}

# Commit a long import every so many issues: bounded WAL growth, resumable progress.
BATCH_SIZE = 500


def fts_phrase(token: str) -> str:
    """One token as an FTS5 string literal: text inside double quotes is never syntax."""
    return '"' + token.replace('"', '""') + '"'


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _iso(value: datetime | None) -> str | None:
    """UTC, one format: stored dates sort as strings."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class MirrorStore:
    """The mirror's tables in the bot database; one connection per store."""

    def __init__(self, path: Path | str, *, autocheckpoint: bool = True) -> None:
        self.path = Path(path)
        self.conn = connect(self.path, check_same_thread=False, autocheckpoint=autocheckpoint)
        # Bumped by every write; related search caches corpus counts against it.
        self.generation = 0
        self.corpus_stats: object | None = None

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit; nested use joins the outer transaction."""
        if not self.conn.in_transaction:
            self.generation += 1
        with transaction(self.conn) as conn:
            yield conn

    # --- writing -------------------------------------------------------------------

    def upsert_issue(self, issue: Issue) -> None:
        """Store `issue` whole: its comments and timeline replace the stored ones."""
        with self.transaction():
            issue_id = self._write_fields(issue)
            self._write_comments(issue_id, issue.comments)
            self._write_timeline(issue_id, issue.timeline)
            self._reindex(issue_id, issue)

    def upsert_many(self, issues: Iterable[Issue]) -> int:
        """Store many issues, committing every BATCH_SIZE; returns how many were stored."""
        count = 0
        batch: list[Issue] = []
        for issue in issues:
            batch.append(issue)
            if len(batch) >= BATCH_SIZE:
                count += self._store_batch(batch)
                batch = []
        return count + self._store_batch(batch)

    def _store_batch(self, batch: Sequence[Issue]) -> int:
        with self.transaction():
            for issue in batch:
                self.upsert_issue(issue)
        return len(batch)

    def update_fields(self, issue: Issue) -> None:
        """Store the issue's own fields, keeping stored comments and timeline (webhooks)."""
        with self.transaction():
            issue_id = self._write_fields(issue)
            self._reindex(issue_id, self._load(issue_id, full=True))

    def upsert_comment(self, repo: str, number: int, comment: Comment) -> bool:
        """Add or replace one comment (matched by id); False when the issue is not mirrored."""
        with self.transaction() as conn:
            issue_id = self.issue_id(repo, number)
            if issue_id is None:
                return False
            row = None
            if comment.id is not None:
                row = conn.execute(
                    "SELECT position FROM mirror_comments WHERE issue_id = ? AND comment_id = ?",
                    (issue_id, comment.id),
                ).fetchone()
            if row is None:
                position = conn.execute(
                    "SELECT COALESCE(MAX(position), -1) + 1 FROM mirror_comments WHERE issue_id = ?",
                    (issue_id,),
                ).fetchone()[0]
            else:
                position = row[0]
            conn.execute(
                "INSERT OR REPLACE INTO mirror_comments VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                self._comment_row(issue_id, position, comment),
            )
            self._sync_comment_count(issue_id)
            self._reindex(issue_id, self._load(issue_id, full=True))
        return True

    def delete_comment(self, repo: str, number: int, comment_id: int) -> None:
        with self.transaction() as conn:
            issue_id = self.issue_id(repo, number)
            if issue_id is None:
                return
            conn.execute(
                "DELETE FROM mirror_comments WHERE issue_id = ? AND comment_id = ?",
                (issue_id, comment_id),
            )
            self._sync_comment_count(issue_id)
            self._reindex(issue_id, self._load(issue_id, full=True))

    def add_timeline_event(self, repo: str, number: int, event: TimelineEvent) -> None:
        with self.transaction() as conn:
            issue_id = self.issue_id(repo, number)
            if issue_id is None:
                return
            position = conn.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM mirror_timeline WHERE issue_id = ?",
                (issue_id,),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO mirror_timeline VALUES (?,?,?,?)",
                (issue_id, position, event.type, event.model_dump_json(exclude_none=True)),
            )

    def delete_issue(self, repo: str, number: int) -> None:
        with self.transaction() as conn:
            issue_id = self.issue_id(repo, number)
            if issue_id is not None:
                conn.execute("DELETE FROM mirror_fts WHERE rowid = ?", (issue_id,))
                conn.execute("DELETE FROM mirror_issues WHERE id = ?", (issue_id,))

    def rename_label(self, repo: str, old: str, new: str | None) -> int:
        """Rename (or, with new=None, remove) a label on every mirrored item of `repo`."""
        with self.transaction() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT issue_id FROM mirror_labels WHERE repo = ? AND name = ?", (repo, old)
                )
            ]
            for issue_id in ids:
                labels = json.loads(
                    conn.execute(
                        "SELECT labels FROM mirror_issues WHERE id = ?", (issue_id,)
                    ).fetchone()[0]
                )
                renamed = [new if name == old else name for name in labels if new or name != old]
                conn.execute(
                    "UPDATE mirror_issues SET labels = ? WHERE id = ?",
                    (json.dumps(list(dict.fromkeys(n for n in renamed if n))), issue_id),
                )
                conn.execute(
                    "DELETE FROM mirror_labels WHERE issue_id = ? AND name = ?", (issue_id, old)
                )
                if new:
                    conn.execute(
                        "INSERT OR IGNORE INTO mirror_labels VALUES (?,?,?)", (repo, new, issue_id)
                    )
        return len(ids)

    def issue_id(self, repo: str, number: int) -> int | None:
        row = self.conn.execute(
            "SELECT id FROM mirror_issues WHERE repo = ? AND number = ?", (repo, number)
        ).fetchone()
        return int(row[0]) if row else None

    def _write_fields(self, issue: Issue) -> int:
        values = (
            int(issue.is_pull_request),
            issue.title,
            issue.body,
            issue.state,
            issue.state_reason,
            None if issue.merged is None else int(issue.merged),
            issue.head_ref,
            issue.author,
            issue.author_association,
            _iso(issue.created_at),
            _iso(issue.updated_at),
            _iso(issue.closed_at),
            json.dumps(issue.assignees),
            json.dumps(list(dict.fromkeys(issue.labels))),
            json.dumps(issue.reactions),
            issue.reaction_total,
            issue.comment_count,
            issue.url,
        )
        row = self.conn.execute(
            """INSERT INTO mirror_issues (repo, number, is_pr, title, body, state, state_reason,
                   merged, head_ref, author, author_association, created_at, updated_at,
                   closed_at, assignees, labels, reactions, reaction_total, comment_count, url)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT (repo, number) DO UPDATE SET
                   is_pr = excluded.is_pr, title = excluded.title, body = excluded.body,
                   state = excluded.state, state_reason = excluded.state_reason,
                   merged = excluded.merged, head_ref = COALESCE(excluded.head_ref, head_ref),
                   author = excluded.author, author_association = excluded.author_association,
                   created_at = excluded.created_at, updated_at = excluded.updated_at,
                   closed_at = excluded.closed_at, assignees = excluded.assignees,
                   labels = excluded.labels, reactions = excluded.reactions,
                   reaction_total = excluded.reaction_total,
                   comment_count = excluded.comment_count, url = excluded.url
               RETURNING id""",
            (issue.repo, issue.number, *values),
        ).fetchone()
        issue_id = int(row[0])
        self.conn.execute("DELETE FROM mirror_labels WHERE issue_id = ?", (issue_id,))
        self.conn.executemany(
            "INSERT OR IGNORE INTO mirror_labels VALUES (?,?,?)",
            [(issue.repo, name, issue_id) for name in issue.labels],
        )
        return issue_id

    @staticmethod
    def _comment_row(issue_id: int, position: int, c: Comment) -> tuple[Any, ...]:
        return (
            issue_id,
            position,
            c.id,
            c.author,
            c.author_association,
            int(c.author_is_bot),
            c.body,
            _iso(c.created_at),
            _iso(c.updated_at),
            json.dumps(c.reactions),
            c.url,
        )

    def _write_comments(self, issue_id: int, comments: Sequence[Comment]) -> None:
        self.conn.execute("DELETE FROM mirror_comments WHERE issue_id = ?", (issue_id,))
        self.conn.executemany(
            "INSERT INTO mirror_comments VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [self._comment_row(issue_id, pos, c) for pos, c in enumerate(comments)],
        )

    def _write_timeline(self, issue_id: int, events: Sequence[TimelineEvent]) -> None:
        self.conn.execute("DELETE FROM mirror_timeline WHERE issue_id = ?", (issue_id,))
        self.conn.executemany(
            "INSERT INTO mirror_timeline VALUES (?,?,?,?)",
            [
                (issue_id, pos, e.type, e.model_dump_json(exclude_none=True))
                for pos, e in enumerate(events)
            ],
        )

    def _sync_comment_count(self, issue_id: int) -> None:
        self.conn.execute(
            """UPDATE mirror_issues SET comment_count = MAX(comment_count,
                   (SELECT COUNT(*) FROM mirror_comments WHERE issue_id = ?)) WHERE id = ?""",
            (issue_id, issue_id),
        )

    def _reindex(self, issue_id: int, issue: Issue | None) -> None:
        """Refresh the derived rows: full text, error signatures, references."""
        conn = self.conn
        conn.execute("DELETE FROM mirror_fts WHERE rowid = ?", (issue_id,))
        conn.execute("DELETE FROM mirror_sigs WHERE issue_id = ?", (issue_id,))
        conn.execute("DELETE FROM mirror_refs WHERE source_id = ?", (issue_id,))
        if issue is None:
            return
        refs = issue_references(issue)
        conn.executemany(
            "INSERT OR IGNORE INTO mirror_refs VALUES (?,?,?,?)",
            [(issue_id, repo, number, kind) for repo, number, kind in refs],
        )
        if issue.is_pull_request:
            return  # related search covers issues only
        title, body, comments = index_text(issue)
        conn.execute(
            "INSERT INTO mirror_fts (rowid, title, body, comments) VALUES (?,?,?,?)",
            (issue_id, title, body, comments),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO mirror_sigs VALUES (?,?,?)",
            [(issue.repo, sig, issue_id) for sig in error_signatures(issue)],
        )

    # --- reading -------------------------------------------------------------------

    def get_issue(self, repo: str, number: int) -> Issue | None:
        """The issue (or PR) with its comments and timeline."""
        issue_id = self.issue_id(repo, number)
        return None if issue_id is None else self._load(issue_id, full=True)

    def get_issues(self, ids: Sequence[int], *, full: bool = False) -> list[Issue]:
        """Issues by row id, in the order given."""
        loaded = (self._load(i, full=full) for i in ids)
        return [issue for issue in loaded if issue is not None]

    def _load(self, issue_id: int, *, full: bool) -> Issue | None:
        row = self.conn.execute("SELECT * FROM mirror_issues WHERE id = ?", (issue_id,)).fetchone()
        if row is None:
            return None
        issue = self._issue_from_row(row)
        if full:
            issue.comments = [
                Comment(
                    id=c["comment_id"],
                    author=c["author"],
                    author_association=c["author_association"],
                    author_is_bot=bool(c["author_is_bot"]),
                    body=c["body"],
                    created_at=_dt(c["created_at"]),
                    updated_at=_dt(c["updated_at"]),
                    reactions=json.loads(c["reactions"]),
                    url=c["url"],
                )
                for c in self.conn.execute(
                    "SELECT * FROM mirror_comments WHERE issue_id = ? ORDER BY position",
                    (issue_id,),
                )
            ]
            issue.timeline = [
                TimelineEvent.model_validate_json(t[0])
                for t in self.conn.execute(
                    "SELECT event FROM mirror_timeline WHERE issue_id = ? ORDER BY position",
                    (issue_id,),
                )
            ]
        return issue

    @staticmethod
    def _issue_from_row(row: sqlite3.Row) -> Issue:
        return Issue(
            repo=row["repo"],
            number=row["number"],
            title=row["title"],
            body=row["body"],
            state=row["state"],
            state_reason=row["state_reason"],
            is_pull_request=bool(row["is_pr"]),
            merged=None if row["merged"] is None else bool(row["merged"]),
            head_ref=row["head_ref"],
            author=row["author"],
            author_association=row["author_association"],
            created_at=_dt(row["created_at"]),
            updated_at=_dt(row["updated_at"]),
            closed_at=_dt(row["closed_at"]),
            assignees=json.loads(row["assignees"]),
            labels=json.loads(row["labels"]),
            reactions=json.loads(row["reactions"]),
            comment_count=row["comment_count"],
            url=row["url"],
        )

    def list_issues(
        self,
        repo: str | None,
        *,
        state: str | None = None,
        label: str | None = None,
        unlabeled: bool = False,
        sort: str = "updated",
        limit: int | None = 30,
        pull_requests: bool = False,
    ) -> list[Issue]:
        """Issues (not PRs unless asked) without comments, newest first by `sort`;
        `limit=None`: all of them. Labels match case-insensitively, as on GitHub."""
        if sort not in SORT_COLUMNS:
            raise ValueError(f"unknown sort {sort!r}; one of {', '.join(SORT_COLUMNS)}")
        where, params = self._issue_filter(repo, state, label, unlabeled, pull_requests)
        sql = (
            f"SELECT * FROM mirror_issues i WHERE {where} "
            f"ORDER BY {SORT_COLUMNS[sort]}, i.number DESC LIMIT ?"
        )
        rows = self.conn.execute(sql, (*params, -1 if limit is None else limit))
        return [self._issue_from_row(r) for r in rows]

    def count_issues(
        self,
        repo: str | None,
        *,
        state: str | None = None,
        label: str | None = None,
        unlabeled: bool = False,
        pull_requests: bool = False,
    ) -> int:
        """How many issues `list_issues` would give without a limit."""
        where, params = self._issue_filter(repo, state, label, unlabeled, pull_requests)
        row = self.conn.execute(f"SELECT COUNT(*) FROM mirror_issues i WHERE {where}", params)
        return int(row.fetchone()[0])

    @staticmethod
    def _issue_filter(
        repo: str | None,
        state: str | None,
        label: str | None,
        unlabeled: bool,
        pull_requests: bool,
    ) -> tuple[str, list[Any]]:
        where = ["i.is_pr = ?"]
        params: list[Any] = [int(pull_requests)]
        if repo is not None:
            where.append("i.repo = ?")
            params.append(repo)
        if state is not None:
            where.append("i.state = ?")
            params.append(state)
        if label is not None:
            where.append(
                "EXISTS (SELECT 1 FROM mirror_labels l WHERE l.issue_id = i.id"
                " AND l.name = ? COLLATE NOCASE)"
            )
            params.append(label)
        if unlabeled:
            where.append("NOT EXISTS (SELECT 1 FROM mirror_labels l WHERE l.issue_id = i.id)")
        return " AND ".join(where), params

    def repos(self) -> list[str]:
        return [
            r[0] for r in self.conn.execute("SELECT DISTINCT repo FROM mirror_issues ORDER BY repo")
        ]

    def stats(self, repo: str | None) -> dict[str, Any]:
        """Counts for `issues stats`: by kind and state, comments, top labels, last sync."""
        # `? IS NULL OR i.repo = ?`: one statement for "all repos" and "one repo".
        scope = "(? IS NULL OR i.repo = ?)"
        params = (repo, repo)
        counts = {
            f"{'pull_requests' if r[0] else 'issues'}_{r[1]}": r[2]
            for r in self.conn.execute(
                f"SELECT i.is_pr, i.state, COUNT(*) FROM mirror_issues i WHERE {scope} GROUP BY 1, 2",
                params,
            )
        }
        comments = self.conn.execute(
            f"SELECT COUNT(*) FROM mirror_comments c JOIN mirror_issues i ON i.id = c.issue_id WHERE {scope}",
            params,
        ).fetchone()[0]
        labels = self.conn.execute(
            f"""SELECT l.name, COUNT(*) AS n FROM mirror_labels l
                JOIN mirror_issues i ON i.id = l.issue_id WHERE {scope} AND i.is_pr = 0
                GROUP BY l.name ORDER BY n DESC, l.name LIMIT 15""",
            params,
        ).fetchall()
        newest = self.conn.execute(
            f"SELECT MAX(i.updated_at) FROM mirror_issues i WHERE {scope}", params
        ).fetchone()[0]
        # PRs the mirror knows only from issues' timelines (an export holds issues; the
        # PRs that reference them are cross-reference events), by state, each PR once.
        linked = self.conn.execute(
            f"""SELECT LOWER(json_extract(t.event, '$.source_state')) AS state,
                COUNT(DISTINCT COALESCE(json_extract(t.event, '$.source_repo'), i.repo)
                      || '#' || json_extract(t.event, '$.source_number'))
                FROM mirror_timeline t JOIN mirror_issues i ON i.id = t.issue_id
                WHERE {scope} AND json_extract(t.event, '$.source_type') = 'PullRequest'
                GROUP BY 1""",
            params,
        ).fetchall()
        syncs = {
            r["repo"]: {"completed_at": r["completed_at"], "in_progress": r["cursor"] is not None}
            for r in self.conn.execute("SELECT * FROM mirror_sync")
            if repo is None or r["repo"] == repo
        }
        return {
            "repos": [repo] if repo else self.repos(),
            "issues_open": counts.get("issues_open", 0),
            "issues_closed": counts.get("issues_closed", 0),
            "pull_requests_open": counts.get("pull_requests_open", 0),
            "pull_requests_closed": counts.get("pull_requests_closed", 0),
            "pull_requests_linked": {state or "unknown": n for state, n in linked},
            "comments": comments,
            "labels": {name: n for name, n in labels},
            "last_updated": newest,
            "sync": syncs,
        }

    def repos_with_number(self, number: int) -> list[str]:
        """Repositories whose mirror holds an issue or PR numbered `number`."""
        return [
            r[0]
            for r in self.conn.execute("SELECT repo FROM mirror_issues WHERE number = ?", (number,))
        ]

    # --- related search and PR detection (the ranking stays in bot.mirror) -------------

    def issue_count(self, repo: str | None) -> int:
        """Issues (not PRs) of `repo`, or of every repository when None."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM mirror_issues WHERE is_pr = 0 AND (? IS NULL OR repo = ?)",
            (repo, repo),
        ).fetchone()
        return int(row[0])

    def term_docs(self, term: str) -> int:
        """How many indexed issues hold `term` (0: the index has never seen it)."""
        row = self.conn.execute(
            "SELECT doc FROM mirror_fts_vocab WHERE term = ?", (term,)
        ).fetchone()
        return int(row[0]) if row else 0

    def signature_docs(self, repo: str, sig: str) -> int:
        """How many issues of `repo` carry the error signature `sig`."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM mirror_sigs WHERE repo = ? AND sig = ?", (repo, sig)
        ).fetchone()
        return int(row[0])

    def match_text(
        self,
        words: Sequence[str],
        *,
        match_all: bool,
        weights: Sequence[float],
        repo: str | None = None,
        state: str | None = None,
        label: str | None = None,
        title_only: bool = False,
        limit: int = 30,
    ) -> list[tuple[int, float]]:
        """(row id, BM25 score: higher is better) of issues holding all (or any) of `words`.

        `weights` weigh the title, body and comments columns; best matches come first.
        """
        if not words:
            return []
        where = ["i.is_pr = 0"]
        params: list[object] = []
        for column, value in (("i.repo", repo), ("i.state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if label is not None:
            where.append(
                "EXISTS (SELECT 1 FROM mirror_labels l WHERE l.issue_id = i.id AND l.name = ?)"
            )
            params.append(label)
        expression = (" AND " if match_all else " OR ").join(fts_phrase(w) for w in words)
        if title_only:
            expression = f"{{title}} : ({expression})"
        bm25 = ", ".join(str(float(w)) for w in weights)
        rows = self.conn.execute(
            f"""SELECT f.rowid, bm25(mirror_fts, {bm25}) AS s
                FROM mirror_fts f JOIN mirror_issues i ON i.id = f.rowid
                WHERE mirror_fts MATCH ? AND {" AND ".join(where)} ORDER BY s LIMIT ?""",
            (expression, *params, limit),
        ).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def issues_with_signatures(self, repo: str, sigs: Sequence[str], *, limit: int) -> set[int]:
        """Row ids of issues of `repo` that carry any of `sigs` (at most `limit` rows read)."""
        if not sigs:
            return set()
        return {
            r[0]
            for r in self.conn.execute(
                f"SELECT issue_id FROM mirror_sigs WHERE repo = ? AND sig IN ({_marks(sigs)})"
                " LIMIT ?",
                (repo, *sigs, limit),
            )
        }

    def ids_of_numbers(self, repo: str, numbers: Iterable[int]) -> set[int]:
        """Row ids of the mirrored issues and PRs of `repo` with these numbers."""
        wanted = list(numbers)
        if not wanted:
            return set()
        return {
            r[0]
            for r in self.conn.execute(
                f"SELECT id FROM mirror_issues WHERE repo = ? AND number IN ({_marks(wanted)})",
                (repo, *wanted),
            )
        }

    def mentioned_by(self, repo: str, number: int) -> set[int]:
        """Row ids of the items whose text mentions `repo#number`."""
        return {
            r[0]
            for r in self.conn.execute(
                """SELECT source_id FROM mirror_refs WHERE target_repo = ? AND target_number = ?
                   AND kind = 'mention'""",
                (repo, number),
            )
        }

    def summaries(
        self, ids: Iterable[int], *, repo: str, state: str | None = None
    ) -> dict[int, dict[str, Any]]:
        """id, number, state, title, labels (a list) and url of those `ids` that are issues
        of `repo` (in `state`, when given)."""
        filters = "i.repo = ? AND i.is_pr = 0" + (" AND i.state = ?" if state else "")
        params: list[object] = [repo, state] if state else [repo]
        found: dict[int, dict[str, Any]] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for row in self.conn.execute(
                f"""SELECT i.id, i.number, i.state, i.title, i.labels, i.url FROM mirror_issues i
                    WHERE i.id IN ({_marks(chunk)}) AND {filters}""",
                (*chunk, *params),
            ):
                found[row["id"]] = dict(row) | {"labels": json.loads(row["labels"])}
        return found

    def signatures_of(self, ids: Sequence[int]) -> list[tuple[int, str]]:
        """(row id, signature) for every signature the issues `ids` carry."""
        if not ids:
            return []
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                f"SELECT issue_id, sig FROM mirror_sigs WHERE issue_id IN ({_marks(ids)})", ids
            )
        ]

    def indexed_text(self, issue_id: int) -> tuple[str, str, str] | None:
        """Title, body and comments as the full-text index holds them."""
        row = self.conn.execute(
            "SELECT title, body, comments FROM mirror_fts WHERE rowid = ?", (issue_id,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def label_counts(self, repo: str, labels: Sequence[str]) -> dict[str, int]:
        """How many items of `repo` carry each of `labels` (labels on none are left out)."""
        if not labels:
            return {}
        return {
            name: count
            for name, count in self.conn.execute(
                f"SELECT name, COUNT(*) FROM mirror_labels WHERE repo = ? AND name IN"
                f" ({_marks(labels)}) GROUP BY name",
                (repo, *labels),
            )
        }

    def prs_referencing(self, repo: str, number: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """PRs of `repo` that reference `repo#number` by one of `kinds` (number, state,
        merged, url, title, kind)."""
        return [
            dict(r)
            for r in self.conn.execute(
                f"""SELECT i.number, i.state, i.merged, i.url, i.title, r.kind
                    FROM mirror_refs r JOIN mirror_issues i ON i.id = r.source_id
                    WHERE r.target_repo = ? AND r.target_number = ? AND i.is_pr = 1
                      AND i.repo = ? AND r.kind IN ({_marks(kinds)})""",
                (repo, number, repo, *kinds),
            )
        ]

    def pr_states(self, repo: str, numbers: Sequence[int]) -> list[dict[str, Any]]:
        """number, state, merged and title of the mirrored PRs of `repo` among `numbers`."""
        if not numbers:
            return []
        return [
            dict(r)
            for r in self.conn.execute(
                f"""SELECT number, state, merged, title FROM mirror_issues
                    WHERE repo = ? AND is_pr = 1 AND number IN ({_marks(numbers)})""",
                (repo, *numbers),
            )
        ]

    # --- sync bookkeeping ------------------------------------------------------------

    def sync_state(self, repo: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM mirror_sync WHERE repo = ?", (repo,)).fetchone()
        return None if row is None else dict(row)

    def save_sync_page(
        self, repo: str, issues: Sequence[Issue], cursor: str | None, *, since: str | None
    ) -> None:
        """One backfill page and its cursor in one transaction: an interruption loses nothing."""
        with self.transaction() as conn:
            for issue in issues:
                self.upsert_issue(issue)
            conn.execute(
                """INSERT INTO mirror_sync (repo, cursor, since, fetched, started_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (repo) DO UPDATE SET cursor = excluded.cursor,
                       since = excluded.since, fetched = fetched + excluded.fetched""",
                (repo, cursor, since, len(issues), _iso(datetime.now(UTC))),
            )

    def start_sync(self, repo: str, since: str | None) -> None:
        with self.transaction() as conn:
            conn.execute(
                """INSERT INTO mirror_sync (repo, cursor, since, fetched, started_at)
                   VALUES (?, NULL, ?, 0, ?)
                   ON CONFLICT (repo) DO UPDATE SET cursor = NULL, since = excluded.since,
                       fetched = 0, started_at = excluded.started_at""",
                (repo, since, _iso(datetime.now(UTC))),
            )

    def finish_sync(self, repo: str) -> None:
        """Mark a backfill complete; the next sync only asks for issues updated since it began."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE mirror_sync SET cursor = NULL, completed_at = started_at WHERE repo = ?",
                (repo,),
            )


class AsyncMirrorStore(AsyncStore[MirrorStore]):
    """The mirror for async code (see bot.store.thread); `call` runs searches and webhooks."""

    async def get_issue(self, repo: str, number: int) -> Issue | None:
        return await self._run(self.sync.get_issue, repo, number)

    async def upsert_issue(self, issue: Issue) -> None:
        await self._run(self.sync.upsert_issue, issue)
