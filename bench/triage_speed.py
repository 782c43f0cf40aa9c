"""How long `assess()` takes on a 60,000-character body, realistic and adversarial.

    .venv/bin/python bench/triage_speed.py [--runs N]

Prints the median and worst time per body kind; the target is under 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bot.config.repo import RepoConfig
from bot.models import Comment, Issue
from bot.triage.pipeline import FixedView, assess

BODY_CHARS = 60_000

REALISTIC_CHUNK = """### System Info
- `transformers` version: 4.45.0
- Platform: Linux-5.15.0-x86_64-with-glibc2.35
- Python version: 3.10.14

### Reproduction
```python
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained("gpt2", device_map="auto")
```
Traceback (most recent call last):
  File "/usr/lib/python3.10/site-packages/transformers/modeling_utils.py", line 3400, in \
from_pretrained
    model = cls(config)
RuntimeError: Expected all tensors to be on the same device
The call to `from_pretrained` fails on 2 GPUs, see https://github.com/o/r/blob/main/src/x.py#L10 ![img](https://x/assets/1)
"""

ADVERSARIAL = {
    "realistic": REALISTIC_CHUNK,
    "one long line": "a" * 997 + " ",
    "backticks": "`" * 500 + "x" * 500,
    "fences": "```\n" * 250,
    "file frames": 'File "' + "/" * 400 + '", line 1\n',
    "hashes and links": "#" * 300 + " https://github.com/" + "a/" * 300,
    "underscores": "a_" * 500,
    "digits x": "9x" * 500,
    "brackets": "[" * 400 + "](" * 300,
    "html": "<" * 500 + ">" * 500,
    "quotes": "> " * 500 + "\n",
}


def body(chunk: str) -> str:
    return (chunk * (BODY_CHARS // len(chunk) + 1))[:BODY_CHARS]


def issue_with(text: str, comments: int = 3, comment_chars: int = 300) -> Issue:
    thread = [
        Comment(author=f"user{i}", body=text[:comment_chars], author_association="NONE")
        for i in range(comments)
    ]
    return Issue(
        repo="huggingface/transformers",
        number=1,
        title="`from_pretrained` fails with RuntimeError on 2x A100",
        body=text,
        labels=["bug", "Contributions Welcome"],
        comments=thread,
        author="reporter",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    config, view = RepoConfig(), FixedView()
    assess(issue_with("warm up"), view, config, None)
    for title, comments, chars in (
        ("3 comments of 300 characters", 3, 300),
        ("stress: 20 comments of 4,000 characters", 20, 4_000),
    ):
        sys.stdout.write(
            f"assess() on a {BODY_CHARS:,}-character body, {title}, {args.runs} runs\n"
        )
        for name, chunk in ADVERSARIAL.items():
            issue = issue_with(body(chunk), comments, chars)
            timings = []
            for _ in range(args.runs):
                start = time.perf_counter()
                assess(issue, view, config, None)
                timings.append((time.perf_counter() - start) * 1000)
            sys.stdout.write(
                f"  {name:<18} median {statistics.median(timings):6.2f} ms"
                f"   max {max(timings):6.2f} ms\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
