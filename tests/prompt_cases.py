"""A LARS-style case built like the coordinator's own example, seeded into the fake GitHub.

A bug with a traceback into `bitsandbytes/backends/cuda/ops.py`, a maintainer comment
that sets the scope, an open PR that addresses it, a closed issue whose last comment
resolved it, and open issues that share the error. Variants move it to each mode. The
repository's files are small stand-ins under tests/fixtures/prompt/lars/repo (`.src`
suffix so that neither pytest nor ruff reads them as this project's code).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.store.blobs import AsyncBlobTexts, BlobTexts
from bot.store.thread import DatabaseThread
from tests.fakegithub import FakeGitHub

REPO = "bitsandbytes-foundation/bitsandbytes"
NUMBER = 1810
PR = 1855
RELATED = (1281, 1403, 1500)
REPO_DIR = Path(__file__).parent / "fixtures" / "prompt" / "lars" / "repo"

SITE = "/opt/conda/lib/python3.11/site-packages"
TRACEBACK = "\n".join(
    [
        "Traceback (most recent call last):",
        '  File "/home/rasmus/repro.py", line 8, in <module>',
        "    opt.step()",
        f'  File "{SITE}/torch/optim/optimizer.py", line 487, in wrapper',
        "    out = func(*args, **kwargs)",
        f'  File "{SITE}/bitsandbytes/optim/optimizer.py", line 22, in step',
        "    self.update_step(group, p, gindex, pindex)",
        f'  File "{SITE}/bitsandbytes/optim/optimizer.py", line 26, in update_step',
        "    F.optimizer_update_32bit(",
        f'  File "{SITE}/bitsandbytes/backends/cuda/ops.py", line 32, in _optimizer_update_32bit',
        "    raise NotImplementedError(",
        "NotImplementedError: Optimizer lars not implemented for 32bit;"
        " choose one of ['adam', 'momentum', 'rmsprop']",
    ]
)

BODY = f"""### System Info

Ubuntu 22.04, Python 3.11.9, torch 2.5.1+cu124, bitsandbytes 0.45.0, one RTX 4090.

### Reproduction

```python
import torch
import bitsandbytes as bnb

model = torch.nn.Linear(64, 64).cuda()
opt = bnb.optim.LARS(model.parameters(), lr=0.01, momentum=0.9)
model(torch.randn(8, 64, device="cuda")).sum().backward()
opt.step()
```

```
{TRACEBACK}
```

### Analysis

`LARS` passes the name "lars" to the 32-bit update, but `str2optimizer32bit` in
bitsandbytes/backends/cuda/ops.py has no "lars" entry. The error message also lists the
keys of `str2optimizer8bit_blockwise` instead of the 32-bit table. Possibly related: #1281.

### Expected behavior

LARS steps like SGD with momentum does.
"""

MAINTAINER_COMMENT = """Thanks for the clear report. LARS should reuse the momentum kernels, \
the same way `lamb` reuses the adam kernels, so the fix is one entry in `str2optimizer32bit` \
plus the wrong key list in the error message.

LARS and LAMB are also missing from the 8bit blockwise table, but that belongs in a separate \
issue. Please don't change the 8bit blockwise dispatch in this PR."""


@contextmanager
def blob_cache(db: Path) -> Iterator[AsyncBlobTexts]:
    """The blob store as the service has it: on its own database thread."""
    thread = DatabaseThread()
    cache = AsyncBlobTexts(BlobTexts(db), thread)
    try:
        yield cache
    finally:
        thread.close()
        cache.close()


def repository_files() -> dict[str, str]:
    return {
        str(path.relative_to(REPO_DIR)).removesuffix(".src"): path.read_text()
        for path in sorted(REPO_DIR.rglob("*.src"))
    }


def seed(fake: FakeGitHub, variant: str = "review") -> None:
    """The case in one of its variants: review (open PR), fix (no PR), verify (PR merged),
    implement (a scoped feature request, no PR), investigate (ROCm only)."""
    fake.add_repo(REPO)
    for path, text in repository_files().items():
        fake.set_file(REPO, path, text)
    title = "LARS missing in str2optimizer32bit"
    labels = ["Optimizers", "Bug"]
    body = BODY
    if variant == "implement":
        title = "Add LARS to the 32-bit optimizer table"
        labels = ["Optimizers", "enhancement"]
    if variant == "investigate":
        title = "LARS fails on ROCm (MI300X) with NotImplementedError"
        labels = ["Optimizers", "ROCm"]
        body = body.replace("one RTX 4090", "ROCm 6.2 on an AMD MI300X")
    fake.add_issue(
        REPO,
        NUMBER,
        title=title,
        body=body,
        user="RasmusHoier",
        labels=labels,
        reactions={"+1": 3},
        created_at="2025-11-18T09:12:00Z",
    )
    fake.add_comment(
        REPO,
        NUMBER,
        MAINTAINER_COMMENT,
        user="matthewdouglas",
        author_association="MEMBER",
        created_at="2025-11-18T15:40:00Z",
    )
    _related(fake)
    if variant in ("review", "verify"):
        fake.add_pull(
            REPO,
            PR,
            title="Add LARS to str2optimizer32bit dictionary",
            body=f"Fixes #{NUMBER}",
            user="contributor-x",
            head_ref="add-lars-32bit",
            merged=variant == "verify",
            created_at="2025-11-20T10:00:00Z",
            files=["bitsandbytes/backends/cuda/ops.py", "tests/test_optim.py"],
        )
        fake.cross_reference(REPO, NUMBER, REPO, PR)


def _related(fake: FakeGitHub) -> None:
    fake.add_issue(
        REPO,
        1281,
        title="NameError: name 'str2optimizer32bit' is not defined",
        body="`python -m bitsandbytes` fails:\n\n```\nNameError: name 'str2optimizer32bit' "
        "is not defined\n```",
        user="someone",
        state="closed",
        created_at="2024-07-02T08:00:00Z",
    )
    fake.add_comment(
        REPO, 1281, "Same here on 0.43.2.", user="another", created_at="2024-07-03T08:00:00Z"
    )
    fake.add_comment(
        REPO,
        1281,
        "Fixed in #1290: the diagnostics module now imports `str2optimizer32bit` from the"
        " backend instead of the old functional module.",
        user="matthewdouglas",
        author_association="MEMBER",
        created_at="2024-07-05T08:00:00Z",
    )
    fake.add_comment(
        REPO,
        1281,
        "Thanks, works now.",
        user="someone",
        created_at="2024-07-06T08:00:00Z",
    )
    shared = (
        "```\nNotImplementedError: Optimizer {name} not implemented for 32bit; choose one of"
        " ['adam', 'momentum', 'rmsprop']\n```\n\nRaised from"
        " bitsandbytes/backends/cuda/ops.py in `str2optimizer32bit` lookups."
    )
    # Open issues with the same error and other triggers: the prompt names the pattern.
    for number, title, lead, name, user, day in (
        (1403, "unable to run FSDP2 with LAMB 32-bit optimizer", "Using LAMB under FSDP2",
         "lamb", "fsdp-user", "2025-01-10"),
        (1500, "AdEMAMix 32-bit fails with paged state", "Paged AdEMAMix",
         "paged_ademamix", "ademamix-user", "2025-03-01"),
    ):  # fmt: skip
        fake.add_issue(
            REPO,
            number,
            title=title,
            body=f"{lead} fails:\n\n" + shared.format(name=name),
            user=user,
            labels=["Optimizers"],
            created_at=f"{day}T08:00:00Z",
        )
