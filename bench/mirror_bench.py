"""Issue-mirror benchmarks: a generated corpus, import time, related-query latency, RSS.

    .venv/bin/python bench/mirror_bench.py            # 20,000 issues, all phases
    .venv/bin/python bench/mirror_bench.py --issues 5000

Each phase runs in its own process so its peak RSS is its own. The corpus generator
(`generate_issues`) is shared with bench/related_eval.py.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = "bench/models"

MODELS = [
    "llama",
    "mistral",
    "gemma",
    "qwen",
    "phi",
    "falcon",
    "mixtral",
    "t5",
    "bert",
    "whisper",
    "gpt2",
    "opt",
    "bloom",
    "deepseek",
    "baichuan",
]
COMPONENTS = [
    "tokenizer",
    "scheduler",
    "attention",
    "kv_cache",
    "quantization",
    "adapter",
    "sampler",
    "dataloader",
    "trainer",
    "checkpoint",
    "pipeline_parallel",
    "tensor_parallel",
    "launcher",
    "exporter",
    "optimizer",
    "generation",
    "embedding",
    "rotary",
    "lora_layer",
    "prefix_cache",
    "speculative_decoding",
    "logits_processor",
]
SYMPTOMS = [
    "crashes",
    "fails",
    "hangs",
    "is slow",
    "returns garbage",
    "raises an error",
    "breaks",
    "does not work",
    "gives wrong output",
    "runs out of memory",
    "segfaults",
    "is broken",
]
SYNONYMS = {
    "crashes": "dies",
    "fails": "errors out",
    "hangs": "freezes",
    "is slow": "takes forever",
    "returns garbage": "outputs nonsense",
    "raises an error": "throws",
    "breaks": "stopped working",
    "does not work": "is not working",
    "gives wrong output": "produces incorrect results",
    "runs out of memory": "OOMs",
    "segfaults": "core dumps",
    "is broken": "misbehaves",
}
FILLER = [
    "when",
    "i",
    "try",
    "to",
    "run",
    "the",
    "model",
    "with",
    "the",
    "latest",
    "release",
    "it",
    "seems",
    "that",
    "something",
    "goes",
    "wrong",
    "during",
    "the",
    "first",
    "step",
    "of",
    "the",
    "process",
    "and",
    "i",
    "am",
    "not",
    "sure",
    "whether",
    "this",
    "is",
    "expected",
    "or",
    "a",
    "regression",
    "because",
    "the",
    "same",
    "script",
    "worked",
    "fine",
    "last",
    "week",
    "on",
    "another",
    "machine",
    "with",
    "a",
    "similar",
    "setup",
    "and",
    "we",
    "would",
    "appreciate",
    "any",
    "pointers",
    "on",
    "how",
    "to",
    "debug",
    "this",
    "further",
]
LABELS = [
    "bug",
    "feature request",
    "question",
    "documentation",
    "performance",
    "stale",
    "good first issue",
]
CLASSES = [
    "Linear4bit",
    "LlamaAttention",
    "GemmaConfig",
    "Trainer",
    "PeftModel",
    "AutoTokenizer",
    "Embedding",
    "LoraLayer",
    "KVCache",
    "Sampler",
]
ATTRS = [
    "weight_scale",
    "quant_state",
    "get_loading_attributes",
    "rope_theta",
    "cache_dtype",
    "block_size",
    "lora_A",
    "dtype",
]
EXCEPTIONS = [
    "RuntimeError",
    "ValueError",
    "KeyError",
    "AttributeError",
    "TypeError",
    "AssertionError",
    "ImportError",
]
BOILERPLATE = (
    "### System Info\n\n- `transformers` version: 4.{minor}.0\n- Platform: Linux-5.15-x86_64-with-glibc2.35\n"
    "- Python version: 3.{py}.12\n- PyTorch version (GPU?): 2.{pt}.1+cu121 (True)\n- Accelerate version: 0.{acc}.0\n"
    "- Using distributed or parallel set-up in script?: no\n- GPU type: NVIDIA A100-SXM4-80GB\n\n"
    "### Who can help?\n\n@maintainers\n\n### Information\n\n- [ ] The official example scripts\n"
    "- [x] My own modified scripts\n\n### Tasks\n\n- [ ] An officially supported task in the `examples` folder\n"
    "- [x] My own task or dataset (give details below)\n\n### Reproduction\n\n"
)


def error_message(rng: random.Random) -> str:
    """One of many distinct, realistic error lines."""
    cls, attr, comp = rng.choice(CLASSES), rng.choice(ATTRS), rng.choice(COMPONENTS)
    n = rng.randint(2, 4096)
    kind = rng.randrange(7)
    if kind == 0:
        return f"AttributeError: '{cls}' object has no attribute '{attr}_{rng.randint(0, 99)}'"
    if kind == 1:
        return f"KeyError: 'model.layers.{rng.randint(0, 80)}.{comp}.{attr}'"
    if kind == 2:
        return f"RuntimeError: shape mismatch in {comp}: expected [{n}, {n // 2}] but got [{n}, {n // 4}] for {cls}.{attr}"
    if kind == 3:
        return f"ValueError: {attr} must be a multiple of {rng.choice([16, 32, 64, 128])} when {comp} uses {rng.choice(MODELS)}_{rng.randint(1, 999)}"
    if kind == 4:
        return f"TypeError: {comp}_{rng.choice(ATTRS)}() got an unexpected keyword argument '{attr}_{rng.randint(0, 999)}'"
    if kind == 5:
        return f"ImportError: cannot import name '{cls}{rng.randint(0, 999)}' from 'models.{comp}'"
    return f"AssertionError: {comp} {attr} check failed for {cls} variant {rng.randint(0, 9999)}"


def traceback_for(rng: random.Random, message: str) -> str:
    frames = rng.sample(COMPONENTS, 3)
    lines = ["Traceback (most recent call last):"]
    for comp in frames:
        lines.append(
            f'  File "/opt/conda/lib/python3.10/site-packages/models/{comp}/core.py", line {rng.randint(10, 900)}, in run_{comp}'
        )
    return "\n".join(lines + [message])


@dataclass
class Planted:
    original: int
    duplicate: int
    error_in_head: (
        bool  # both error lines lie within the first 1,000 characters (the rule's window)
    )


def _filler(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(FILLER) for _ in range(words))


def _issue(
    number: int, title: str, body: str, labels: list[str], comments: list[str], state: str
) -> dict:
    day = 1 + number % 28
    return {
        "repository": REPO,
        "issue": {
            "number": number,
            "title": title,
            "body": body,
            "state": state,
            "user": {"login": f"user{number % 500}"},
            "labels": [{"name": name} for name in labels],
            "comments": len(comments),
            "created_at": f"2024-{1 + number % 12:02d}-{day:02d}T00:00:00Z",
            "updated_at": f"2025-{1 + number % 12:02d}-{day:02d}T00:00:00Z",
            "reactions": {"+1": number % 7},
            "html_url": f"https://github.com/{REPO}/issues/{number}",
        },
        "comments": [
            {
                "id": number * 100 + i,
                "user": {"login": f"user{i}"},
                "body": text,
                "created_at": "2025-01-01T00:00:00Z",
            }
            for i, text in enumerate(comments)
        ],
        "timeline": [],
    }


def generate_issues(
    count: int, *, duplicates: int = 0, seed: int = 7
) -> tuple[list[dict], list[Planted]]:
    """`count` background issues in REST JSON-lines shape, plus planted duplicate pairs.

    Errors recur (a few issues share each message, as in real trackers), and each
    duplicate reuses its original's error line but says everything else in other words:
    another title, another model, the error sometimes only in a comment.
    """
    rng = random.Random(seed)
    messages = [error_message(rng) for _ in range(max(count // 3, 10))]
    items: list[dict] = []
    originals: list[tuple[int, str, str, str]] = []
    for number in range(1, count + 1):
        model, comp, symptom = rng.choice(MODELS), rng.choice(COMPONENTS), rng.choice(SYMPTOMS)
        message = rng.choice(messages)
        title = f"[Bug]: {model} {comp.replace('_', ' ')} {symptom}"
        # Half the reports follow the issue template (environment first), half go straight in.
        head = (
            BOILERPLATE.format(
                minor=rng.randint(30, 46),
                py=rng.randint(8, 12),
                pt=rng.randint(0, 5),
                acc=rng.randint(20, 34),
            )
            if rng.random() < 0.5
            else ""
        )
        body = (
            head
            + f"```python\nmodel = load('{model}-{rng.randint(1, 70)}b')\nmodel.{comp}.run()\n```\n\n"
            + _filler(rng, rng.randint(20, 80))
            + "\n\n```\n"
            + traceback_for(rng, message)
            + "\n```\n"
        )
        comments = [_filler(rng, rng.randint(5, 30)) for _ in range(rng.randint(0, 4))]
        labels = rng.sample(LABELS, rng.randint(0, 2))
        items.append(
            _issue(
                number, title, body, labels, comments, "closed" if rng.random() < 0.4 else "open"
            )
        )
        originals.append((number, model, comp, message))
    planted: list[Planted] = []
    for k, (number, model, _comp, message) in enumerate(rng.sample(originals, duplicates)):
        dup_number = count + 1 + k
        other_model = rng.choice([m for m in MODELS if m != model])
        symptom = SYNONYMS[rng.choice(list(SYNONYMS))]
        title = f"{other_model} {symptom} after upgrading"
        intro = _filler(rng, rng.randint(10, 40))
        error_block = "```\n" + message + "\n```"
        place = rng.randrange(3)
        comments = []
        if place == 0:  # short report: the error right away
            body = f"{intro}\n\n{error_block}"
        elif place == 1:  # the issue template first, as most trackers ask
            head = BOILERPLATE.format(minor=40, py=11, pt=3, acc=30)
            body = head + f"{intro}\n\n{error_block}"
        else:  # the error only arrives in a comment
            body = intro
            comments = [f"forgot the error:\n{error_block}"]
        items.append(_issue(dup_number, title, body, [], comments, "open"))
        original_head = (
            items[number - 1]["issue"]["title"] + "\n" + items[number - 1]["issue"]["body"][:1000]
        )
        in_head = message in (title + "\n" + body[:1000]) and message in original_head
        planted.append(Planted(number, dup_number, error_in_head=in_head))
    return items, planted


def write_jsonl(items: list[dict], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item) + "\n")


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_import(file: Path, db: Path) -> None:
    from bot.cli.issues import register

    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path)
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--db", str(db), "issues", "import", str(file)])
    started = time.perf_counter()
    code = args.func(args)
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "phase": "import",
                "seconds": round(elapsed, 2),
                "rss_mb": round(_peak_rss_mb(), 1),
                "exit": code,
            }
        )
    )


def phase_query(db: Path, queries: int) -> None:
    from bot.mirror.related import find_related
    from bot.store.mirror import MirrorStore

    store = MirrorStore(db)
    total = store.conn.execute("SELECT MAX(number) FROM mirror_issues").fetchone()[0]
    rng = random.Random(1)
    numbers = [rng.randint(1, total) for _ in range(queries)]
    timings = []
    for number in numbers:
        issue = store.get_issue(REPO, number)
        assert issue is not None
        started = time.perf_counter()
        find_related(store, issue, limit=10)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(
        json.dumps(
            {
                "phase": "related",
                "queries": queries,
                "p50_ms": round(statistics.median(timings), 2),
                "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 2),
                "max_ms": round(timings[-1], 2),
                "rss_mb": round(_peak_rss_mb(), 1),
            }
        )
    )


def _run(*argv: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *argv], check=True, capture_output=True, text=True
    ).stdout
    result: dict = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--phase", choices=("import", "query"))
    parser.add_argument("--file", type=Path)
    parser.add_argument("--db", type=Path)
    args = parser.parse_args()
    if args.phase == "import":
        phase_import(args.file, args.db)
        return
    if args.phase == "query":
        phase_query(args.db, args.queries)
        return
    with tempfile.TemporaryDirectory() as tmp:
        file, db = Path(tmp) / "issues.jsonl", Path(tmp) / "bench.sqlite3"
        items, _ = generate_issues(args.issues)
        write_jsonl(items, file)
        size_mb = file.stat().st_size / 1e6
        print(
            f"corpus: {args.issues} issues, {sum(len(i['comments']) for i in items)} comments, {size_mb:.1f} MB JSON lines"
        )
        first = _run("--phase", "import", "--file", str(file), "--db", str(db))
        print(
            f"issues import (first):   {first['seconds']:.2f} s, peak RSS {first['rss_mb']:.0f} MB"
        )
        again = _run("--phase", "import", "--file", str(file), "--db", str(db))
        print(
            f"issues import (re-run):  {again['seconds']:.2f} s, peak RSS {again['rss_mb']:.0f} MB"
        )
        print(
            f"database size: {sum(p.stat().st_size for p in Path(tmp).glob('bench.sqlite3*')) / 1e6:.0f} MB"
        )
        query = _run("--phase", "query", "--db", str(db), "--queries", str(args.queries))
        print(
            f"related ({query['queries']} queries): p50 {query['p50_ms']:.1f} ms, "
            f"p95 {query['p95_ms']:.1f} ms, max {query['max_ms']:.1f} ms, peak RSS {query['rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
