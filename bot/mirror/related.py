"""Related-issue search: BM25 full text plus error signatures, weighted by the corpus itself.

The coordinator's rule counted shared words against a hand-kept stop list. Here every
term is weighted by how rare it is in the mirrored repository (inverse document
frequency), so "the" or "### System Info" weigh nothing without anyone listing them,
and a shared `RuntimeError: expected all tensors ...` line or `tuners/lora.py` path
weighs a lot. Explicit references between two issues count most of all.
"""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING

from bot.models import Issue, RelatedIssue

if TYPE_CHECKING:
    from bot.store.mirror import MirrorStore

# Bounds on what one issue contributes to the index (a pasted 1 MB log is not 1 MB of signal).
BODY_CHARS = 20_000
COMMENT_CHARS = 5_000
COMMENTS_CHARS = 40_000
MAX_SIGNATURES = 300

QUERY_TERMS = 24  # the rarest, most repeated terms of the issue make its full-text query
TEXT_CANDIDATES = 100
BM25_WEIGHTS = (2.0, 1.0, 0.5)  # title, body, comments
SIGNATURE_WEIGHT = 1.5
LABEL_WEIGHT = 0.5
REFERENCE_SCORE = 20.0  # one issue names the other ("#123", a cross-reference)
MIN_SCORE = 2.0
# The floor beyond the score: a related issue shares an error line, a file, identifiers,
# a link, or at least this many rare words; words and labels on most issues never count.
MIN_SHARED_WORDS = 4
MIN_SHARED_NAMES = 2
COMMON_SHARE = 0.5
RARE_SHARE = 0.25
MIN_DOCS_FOR_COMMON = 10  # below this, "most issues" cannot be told apart from chance
# Labels that say what to do with an issue, not what it is about.
TRIGGER_LABELS = frozenset({"agent-ready", "dispatch"})
SHOWN_TERMS = 8
# Posting lists longer than this are too common to be worth reading for candidates.
MAX_TERM_DOCS_SHARE = 0.02
MIN_TERM_DOCS_CAP = 250
RARE_SIGNATURE_DOCS = 50
MAX_SIGNATURE_CANDIDATES = 300
STATS_MAX_AGE = 300.0  # seconds before corpus counts are re-read even without local writes
STATS_STALE_AFTER_WRITE = 30.0

_TOKEN = re.compile(r"\w+")
_EXCEPTION = re.compile(r"\b([A-Z][A-Za-z0-9_]*(?:Error|Exception|Warning|Interrupt))\b")
_EXCEPTION_LINE = re.compile(
    r"\b([A-Z][A-Za-z0-9_]*(?:Error|Exception|Warning)):[ \t]*(\S[^\n]{5,})"
)
_LOG_ERROR_LINE = re.compile(r"(?im)^[ \t>*-]*(?:error|fatal|critical)\b[:\] \t]+(\S[^\n]{9,})")
_PATH = re.compile(
    r"(?<![\w./-])/?(?:[\w.-]+/)*[\w-][\w.-]*\.(?:py|pyx|cpp|cc|cu|cuh|c|h|hpp|rs|go|js|ts|java|yaml|yml|toml|sh)\b"
)
_DOTTED = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b")
_SNAKE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b")
_CAMEL = re.compile(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+\b")
_CALL = re.compile(r"\b([A-Za-z_]\w{2,})\(|, in ([A-Za-z_]\w{2,})\b")
_NOT_DOTTED_SUFFIXES = {
    "com",
    "org",
    "io",
    "co",
    "net",
    "ai",
    "dev",
    "html",
    "md",
    "txt",
    "png",
    "jpg",
    "gif",
}
_MENTION = re.compile(r"(?:(?<![\w/])#|/issues/)(\d{1,7})\b")


def tokens(text: str) -> list[str]:
    """Words as the FTS5 index sees them (unicode61, case-folded, `_` kept inside words)."""
    return _TOKEN.findall(text.lower())


def index_text(issue: Issue) -> tuple[str, str, str]:
    """Title, body and human comments, bounded, as the full-text index stores them."""
    parts: list[str] = []
    budget = COMMENTS_CHARS
    for comment in issue.comments:
        if comment.author_is_bot or budget <= 0:
            continue
        text = comment.body[: min(COMMENT_CHARS, budget)]
        parts.append(text)
        budget -= len(text)
    return issue.title, issue.body[:BODY_CHARS], "\n".join(parts)


def _normalise_message(message: str) -> list[str]:
    message = re.sub(r"0x[0-9a-fA-F]+", "0x#", message.lower())
    message = _PATH.sub(lambda m: m.group(0).rsplit("/", 1)[-1], message)
    message = re.sub(r"\d+", "#", message)
    return re.findall(r"[\w#']+", message)


def _path_signatures(path: str) -> list[str]:
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    parts = [p for p in path.split("/") if p]
    found = [f"file:{parts[-1]}"]
    if len(parts) > 1:
        found.append(f"path:{'/'.join(parts[-2:])}")
    return found


def signatures_of_text(text: str) -> list[str]:
    """Error signatures: exception types, error message lines, file paths, code names."""
    found: list[str] = []
    found += [f"exc:{m}" for m in _EXCEPTION.findall(text)]
    for exc, message in _EXCEPTION_LINE.findall(text):
        words = _normalise_message(message)
        found.append(f"msg:{exc}: {' '.join(words[:10])}")
        if len(words) > 5:
            found.append(f"msg:{exc}: {' '.join(words[:5])} ...")
    for message in _LOG_ERROR_LINE.findall(text):
        words = _normalise_message(message)
        found.append(f"msg:error: {' '.join(words[:10])}")
    for path in _PATH.findall(text):
        found += _path_signatures(path)
    for name in _DOTTED.findall(text):
        parts = name.split(".")
        if parts[-1].lower() in _NOT_DOTTED_SUFFIXES or min(len(p) for p in parts) < 2:
            continue
        if _PATH.fullmatch(name):
            continue
        found.append(f"name:{name}")
    found += [f"name:{m}" for m in _SNAKE.findall(text)]
    found += [f"name:{m}" for m in _CAMEL.findall(text) if not _EXCEPTION.fullmatch(m)]
    found += [f"call:{a or b}" for a, b in _CALL.findall(text)]
    return found


def error_signatures(issue: Issue) -> list[str]:
    """The issue's distinct signatures (title, body, human comments), bounded in number."""
    title, body, comments = index_text(issue)
    unique = dict.fromkeys(
        s for s in signatures_of_text(f"{title}\n{body}\n{comments}") if len(s) <= 120
    )
    return list(unique)[:MAX_SIGNATURES]


def mentioned_numbers(issue: Issue) -> set[int]:
    """Issue numbers this issue names in its text or cross-references."""
    title, body, comments = index_text(issue)
    numbers = {int(n) for n in _MENTION.findall(f"{title}\n{body}\n{comments}")}
    numbers |= {
        e.source_number
        for e in issue.timeline
        if e.type == "CrossReferencedEvent"
        and e.source_type == "Issue"
        and e.source_number is not None
        and e.source_repo in (None, issue.repo)
    }
    numbers.discard(issue.number)
    return numbers


def idf(docs: int, df: int) -> float:
    """BM25's inverse document frequency: rare terms weigh more, ubiquitous ones ~0."""
    return math.log((docs - df + 0.5) / (df + 0.5) + 1.0)


class CorpusStats:
    """Document frequencies, read lazily and kept per store: IDF without a scan per query.

    Counts may lag recent writes by up to STATS_STALE_AFTER_WRITE seconds (weights shift
    by a document or two); a word or signature never seen before is always looked up.
    """

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.loaded_at = time.monotonic()
        self.term_docs: dict[str, int] = {}
        self.sig_docs: dict[tuple[str, str], int] = {}
        self.repo_docs: dict[str | None, int] = {}

    @classmethod
    def of(cls, store: MirrorStore) -> CorpusStats:
        stats = store.corpus_stats
        age = time.monotonic() - stats.loaded_at if isinstance(stats, cls) else 0.0
        if (
            not isinstance(stats, cls)
            or age > STATS_MAX_AGE
            or (stats.generation != store.generation and age > STATS_STALE_AFTER_WRITE)
        ):
            stats = cls(store.generation)
            store.corpus_stats = stats
        return stats

    def docs(self, store: MirrorStore, repo: str | None) -> int:
        if repo not in self.repo_docs:
            self.repo_docs[repo] = store.issue_count(repo)
        return self.repo_docs[repo]

    def term(self, store: MirrorStore, term: str) -> int:
        count = self.term_docs.get(term)
        if count is None:
            count = store.term_docs(term)
            if count:
                self.term_docs[term] = count
        return count

    def signature(self, store: MirrorStore, repo: str, sig: str) -> int:
        count = self.sig_docs.get((repo, sig))
        if count is None:
            count = store.signature_docs(repo, sig)
            if count:
                self.sig_docs[(repo, sig)] = count
        return count


def _query_terms(
    store: MirrorStore, issue: Issue, docs: int, *, title_only: bool
) -> dict[str, float]:
    """The issue's most telling words with their corpus weights (no stop list)."""
    title, body, comments = index_text(issue)
    counts: dict[str, float] = {}
    weighted = [(title, 3.0)] if title_only else [(title, 3.0), (body, 1.0), (comments, 0.5)]
    for text, weight in weighted:
        for word in tokens(text):
            counts[word] = counts.get(word, 0.0) + weight
    words = [w for w in counts if len(w) > 1 and not w.isdigit()]
    if not words:
        return {}
    stats = CorpusStats.of(store)
    df = {w: stats.term(store, w) for w in words}
    cap = max(MIN_TERM_DOCS_CAP, int(docs * MAX_TERM_DOCS_SHARE))
    if docs >= MIN_DOCS_FOR_COMMON:
        cap = min(cap, int(docs * COMMON_SHARE))  # a word on most issues says nothing
    weights = {
        w: idf(docs, df[w]) * math.sqrt(counts[w])
        for w in words
        if 0 < df[w] <= cap  # unknown to the index: nothing else can match it
    }
    best = sorted(weights, key=lambda w: weights[w], reverse=True)[:QUERY_TERMS]
    return {w: idf(docs, df[w]) for w in best}


def find_related(
    store: MirrorStore,
    issue: Issue,
    *,
    limit: int = 10,
    state: str | None = None,
    title_only: bool = False,
    ignored_labels: frozenset[str] = TRIGGER_LABELS,
) -> list[RelatedIssue]:
    """Issues of the same repository most like `issue`, best first, each with what matched.

    Only issues above the floor: a shared error line, file or identifiers, a link between
    the two, or several rare shared words; each carries its `reason` in plain words.
    """
    repo = issue.repo
    self_id = store.issue_id(repo, issue.number)
    stats = CorpusStats.of(store)
    docs_all = stats.docs(store, None)
    docs = stats.docs(store, repo)
    if docs == 0:
        return []

    # 1. Full text: BM25 over title, body and comments with the issue's rarest words.
    terms = _query_terms(store, issue, max(docs_all, 1), title_only=title_only)
    text_score: dict[int, float] = {}
    if terms:
        text_score = dict(
            store.match_text(
                list(terms),
                match_all=False,
                weights=BM25_WEIGHTS,
                repo=repo,
                state=state,
                title_only=title_only,
                limit=TEXT_CANDIDATES,
            )
        )

    # 2. Error signatures, weighted by how rare each is in this repository.
    sigs = [] if title_only else error_signatures(issue)
    sig_weight: dict[str, float] = {}
    sig_candidates: set[int] = set()
    if sigs:
        for sig in sigs:
            others = stats.signature(store, repo, sig) - (1 if self_id is not None else 0)
            if others > 0:
                sig_weight[sig] = idf(docs, others)
        rare = [s for s in sig_weight if stats.signature(store, repo, s) <= RARE_SIGNATURE_DOCS]
        sig_candidates = store.issues_with_signatures(repo, rare, limit=MAX_SIGNATURE_CANDIDATES)

    # 3. Explicit references, either direction.
    ref_numbers = mentioned_numbers(issue)
    referenced = store.ids_of_numbers(repo, ref_numbers) | store.mentioned_by(repo, issue.number)

    candidates = (set(text_score) | sig_candidates | referenced) - {self_id}
    if not candidates:
        return []
    rows = store.summaries(candidates, repo=repo, state=state)
    shared_sigs: dict[int, list[str]] = {cid: [] for cid in rows}
    if sig_weight and rows:
        for cid, sig in store.signatures_of(list(rows)):
            if sig in sig_weight:
                shared_sigs[cid].append(sig)

    ignored = {name.lower() for name in ignored_labels}
    label_weight = {
        name: weight
        for name, weight in _label_weights(store, repo, issue.labels, docs).items()
        if name.lower() not in ignored
    }
    scored: list[tuple[float, int, list[str]]] = []
    for cid, row in rows.items():
        sigs_here = sorted(shared_sigs[cid], key=lambda s: -sig_weight[s])
        labels_here = [lbl for lbl in row["labels"] if lbl in label_weight]
        score = (
            text_score.get(cid, 0.0)
            + SIGNATURE_WEIGHT * sum(sig_weight[s] for s in sigs_here)
            + LABEL_WEIGHT * sum(label_weight[lbl] for lbl in labels_here)
            + (REFERENCE_SCORE if cid in referenced else 0.0)
        )
        if score < MIN_SCORE:
            continue
        matched = sigs_here[:5] + [f"label:{lbl}" for lbl in labels_here]
        scored.append((score, cid, matched))
    scored.sort(key=lambda item: (-item[0], item[1]))

    # Reasons count only what few issues share (a quarter of the corpus at most).
    word_floor = (
        idf(docs_all, int(docs_all * RARE_SHARE)) if docs_all >= MIN_DOCS_FOR_COMMON else 0.0
    )
    sig_floor = idf(docs, int(docs * RARE_SHARE)) if docs >= MIN_DOCS_FOR_COMMON else 0.0
    results: list[RelatedIssue] = []
    for score, cid, matched in scored:
        if len(results) >= limit:
            break
        row = rows[cid]
        reference = []
        if row["number"] in ref_numbers:
            reference = [f"mentions #{row['number']}"]
        elif cid in referenced:
            reference = [f"mentioned by #{row['number']}"]
        words = _matched_words(store, cid, terms)
        rare_words = [w for w in words if terms[w] >= word_floor]
        rare_sigs = [s for s in shared_sigs[cid] if sig_weight[s] >= sig_floor]
        reason = related_reason(reference, rare_sigs, rare_words, sig_weight)
        if not reason:
            continue  # below the floor: only common words or labels in common
        results.append(
            RelatedIssue(
                number=row["number"],
                state=row["state"],
                title=row["title"],
                score=round(score, 2),
                matched=reference + words + matched,
                url=row["url"],
                repo=repo,
                reason=reason,
            )
        )
    return results


def related_reason(
    reference: list[str], sigs: list[str], words: list[str], weights: dict[str, float]
) -> str:
    """Why two issues are related, in plain words; "" when below the floor."""
    if reference:
        number = reference[0].rsplit("#", 1)[-1]
        if reference[0].startswith("mentions"):
            return f"this issue links to #{number}"
        return f"#{number} links to this issue"
    ranked = sorted(sigs, key=lambda s: -weights.get(s, 0.0))
    message = next((s for s in ranked if s.startswith("msg:")), None)
    if message:
        return f"shares the error line: {message[4:].removesuffix(' ...')}"
    path = next((s for s in ranked if s.startswith("path:")), None)
    if path:
        return f"touches the same file: {path[5:]}"
    names = [s.split(":", 1)[1] for s in ranked if s.startswith(("name:", "call:"))]
    names = list(dict.fromkeys(names))
    if len(names) >= MIN_SHARED_NAMES:
        return "shares identifiers: " + ", ".join(names[:3])
    if len(words) >= MIN_SHARED_WORDS:
        return "similar wording: " + ", ".join(words[:4])
    return ""


def _matched_words(store: MirrorStore, issue_id: int, terms: dict[str, float]) -> list[str]:
    """The query words present in a result, rarest first."""
    row = store.indexed_text(issue_id)
    if row is None or not terms:
        return []
    present = set(tokens(" ".join(row)))
    return sorted((t for t in terms if t in present), key=lambda t: -terms[t])[:SHOWN_TERMS]


def _label_weights(store: MirrorStore, repo: str, labels: list[str], docs: int) -> dict[str, float]:
    if not labels:
        return {}
    return {name: idf(docs, count) for name, count in store.label_counts(repo, labels).items()}


def search_issues(
    store: MirrorStore,
    text: str,
    *,
    repo: str | None = None,
    state: str | None = None,
    label: str | None = None,
    limit: int = 30,
    title_only: bool = False,
) -> list[tuple[int, float]]:
    """(row id, BM25 score) of issues holding every word of `text`, or any word if none do."""
    words = list(dict.fromkeys(tokens(text)))
    if not words:
        return []
    for match_all in (True, False):
        rows = store.match_text(
            words,
            match_all=match_all,
            weights=BM25_WEIGHTS,
            repo=repo,
            state=state,
            label=label,
            title_only=title_only,
            limit=limit,
        )
        if rows or len(words) == 1:
            return [(rowid, round(score, 2)) for rowid, score in rows]
    return []
