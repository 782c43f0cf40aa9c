"""Recall@5 of related search against the coordinator's rule (bench/related_baseline.py).

    .venv/bin/python bench/related_eval.py

1. truth.json links (`related`, `duplicate_of`) on the real data in ../shared/data (beside the repository).
2. The real issues plus planted duplicates: every real issue with an error line gets
   a twin that quotes the same error line but says everything else in other words
   (generated text; the error right away, after the issue template, or in a comment).
3. A generated corpus (bench/mirror_bench.py) with planted duplicate pairs.
A planted pair counts as found when the original is in the duplicate's top 5.
"""

from __future__ import annotations

import json
import random
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from mirror_bench import BOILERPLATE, FILLER, MODELS, SYNONYMS, generate_issues, write_jsonl  # noqa: E402
from related_baseline import BaselineIndex  # noqa: E402

from bot.mirror.formats import parse_rest_line  # noqa: E402
from bot.mirror.importer import import_file  # noqa: E402
from bot.mirror.related import find_related  # noqa: E402
from bot.models import Comment, Issue  # noqa: E402
from bot.store.mirror import MirrorStore  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
K = 5
ERROR_LINE = re.compile(r"^.*\b[A-Z]\w*(?:Error|Exception):[^\n]{5,}$", re.MULTILINE)


def corpus_of(store: MirrorStore, repo: str) -> list[Issue]:
    numbers = [
        r[0]
        for r in store.conn.execute(
            "SELECT number FROM mirror_issues WHERE repo = ? AND is_pr = 0", (repo,)
        )
    ]
    return [i for i in (store.get_issue(repo, n) for n in numbers) if i is not None]


def hits(store: MirrorStore, pairs: list[tuple[str, int, int]]) -> tuple[int, int]:
    """(ours, baseline): how many (repo, query, target) pairs have the target in the top K."""
    indexes: dict[str, BaselineIndex] = {}
    ours = base = 0
    for repo, query_number, target in pairs:
        query = store.get_issue(repo, query_number)
        assert query is not None
        if repo not in indexes:
            indexes[repo] = BaselineIndex(corpus_of(store, repo))
        index = indexes[repo]
        ours += target in [r.number for r in find_related(store, query, limit=K)]
        base += target in [n for n, _ in index.related(query, limit=K)]
    return ours, base


def real_truth(store: MirrorStore) -> None:
    links = []
    for item in json.loads((DATA / "truth.json").read_text()):
        targets = list(item["related"]) + ([item["duplicate_of"]] if item["duplicate_of"] else [])
        links += [(item["repo"], item["number"], t) for t in targets]
    present = [(r, q, t) for r, q, t in links if store.get_issue(r, t) is not None]
    print(
        f"1. truth.json: {len(links)} links ({', '.join(f'{r}#{q} -> #{t}' for r, q, t in links)})"
    )
    if not present:
        print(
            "   none of the linked issues is in the real data, so neither method can find them: not evaluable"
        )
        return
    ours, base = hits(store, present)
    print(f"   recall@{K}: ours {ours}/{len(present)}, baseline {base}/{len(present)}")


def paraphrase(rng: random.Random, original: Issue, number: int, error_line: str) -> Issue:
    intro = " ".join(rng.choice(FILLER) for _ in range(rng.randint(10, 40)))
    title = f"{rng.choice(MODELS)} {SYNONYMS[rng.choice(list(SYNONYMS))]} after upgrading"
    block = f"```\n{error_line.strip()}\n```"
    place = rng.randrange(3)
    comments: list[Comment] = []
    if place == 0:
        body = f"{intro}\n\n{block}"
    elif place == 1:
        body = BOILERPLATE.format(minor=40, py=11, pt=3, acc=30) + f"{intro}\n\n{block}"
    else:
        body, comments = intro, [Comment(author="reporter", body=f"the error:\n{block}")]
    return Issue(repo=original.repo, number=number, title=title, body=body, comments=comments)


def real_planted(store: MirrorStore) -> None:
    rng = random.Random(11)
    pairs = []
    originals = [i for repo in store.repos() for i in corpus_of(store, repo)]
    for original in originals:
        text = "\n".join([original.title, original.body, *(c.body for c in original.comments)])
        lines = ERROR_LINE.findall(text)
        if not lines:
            continue
        twin = paraphrase(rng, original, 1_000_000 + original.number, rng.choice(lines))
        store.upsert_issue(twin)
        pairs.append((original.repo, twin.number, original.number))
    ours, base = hits(store, pairs)
    print(
        f"2. real issues + planted paraphrases: {len(pairs)} of {len(originals)} real issues have an error line"
    )
    print(
        f"   recall@{K}: ours {ours}/{len(pairs)} = {ours / len(pairs):.0%}, baseline {base}/{len(pairs)} = {base / len(pairs):.0%}"
    )


def generated(tmp: Path, count: int, duplicates: int) -> None:
    items, planted = generate_issues(count, duplicates=duplicates)
    file = tmp / "generated.jsonl"
    write_jsonl(items, file)
    store = MirrorStore(tmp / "generated.sqlite3")
    import_file(store, file)
    repo = parse_rest_line(items[0]).repo
    groups = {
        "error line within the first 1,000 chars of both": [p for p in planted if p.error_in_head],
        "error line later in either (after the template, or in a comment)": [
            p for p in planted if not p.error_in_head
        ],
    }
    total_ours = total_base = 0
    print(f"3. generated corpus: {count} issues + {duplicates} planted duplicates")
    for name, group in groups.items():
        ours, base = hits(store, [(repo, p.duplicate, p.original) for p in group])
        total_ours += ours
        total_base += base
        print(f"   {name}: ours {ours}/{len(group)}, baseline {base}/{len(group)}")
    print(
        f"   recall@{K}: ours {total_ours}/{len(planted)} = {total_ours / len(planted):.0%}, "
        f"baseline {total_base}/{len(planted)} = {total_base / len(planted):.0%}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = MirrorStore(Path(tmp) / "real.sqlite3")
        for name in ("peft", "transformers", "vllm"):
            import_file(store, DATA / f"{name}.export.json")
        real_truth(store)
        real_planted(store)
        generated(Path(tmp), 3000, 300)


if __name__ == "__main__":
    main()
