"""Rules that must hold on repositories nobody tuned on (issue 12, part 3), and quotes.

Each case is a general rule with the real shape that once went wrong: FSDP2 not seen as
multi-GPU, a torch.compile design effort called actionable on "from user code:", a
silent numerical bug asked for its traceback, a package whose name is not the
repository's, quotes that started mid-word.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.config.triage import TriageRules
from bot.github.trees import RepoTree
from bot.models import Comment, ExistingPR, Issue
from bot.triage.engine import decide
from bot.triage.text import make_part, snippet

RULES = TriageRules()


def issue(
    title: str, body: str, *, repo: str = "huggingface/peft", comments: list[str] = ()
) -> Issue:
    return Issue(
        repo=repo,
        number=900,
        title=title,
        body=body,
        author="reporter",
        comments=[Comment(author="someone", body=text) for text in comments],
    )


def names(decision) -> set[str]:
    return {s.name for s in decision.signals}


def test_fsdp2_zero3_nccl_and_multi_node_need_several_gpus() -> None:
    cases = [
        ("[Bug]: LoRA merge fails under FSDP2", "fully_shard() with FSDP2 breaks merging."),
        ("ZeRO-3 checkpoint cannot be loaded", "DeepSpeed ZeRO-3 saves an empty state dict."),
        ("NCCL timeout at startup", "Multi-node run, NCCL watchdog fires on rank 3."),
        ("Tensor parallel hangs", "With tensor parallel size 4 the server hangs."),
    ]
    for title, body in cases:
        decision = decide(issue(title, body), RULES)
        assert "multi-gpu" in decision.hardware, title
        assert decision.verdict == "needs-hardware", title


def test_a_parallel_size_of_one_is_one_device() -> None:
    body = "vllm serve model --tensor-parallel-size 1\nworld_size=1, it crashes with KeyError: 'x'"
    assert decide(issue("Crash when serving", body), RULES).hardware == []


def test_design_efforts_need_a_decision() -> None:
    rfc = decide(issue("[RFC]: torch.compile support for adapters", "Plan below."), RULES)
    assert rfc.verdict == "needs-decision"
    proposal = decide(
        issue("Caching compiled graphs", "We need to decide where the cache lives first."), RULES
    )
    assert proposal.verdict == "needs-decision"
    asked = decide(
        issue(
            "Compile the LoRA forward",
            "It recompiles on every call.\n```python\nmodel = torch.compile(model)\n```",
            comments=["Before a PR, could you write a design doc covering dynamic shapes?"],
        ),
        RULES,
    )
    assert asked.verdict == "needs-decision"
    prs = [ExistingPR(number=n, state="closed", found_by="timeline") for n in (901, 902, 903)]
    spread = decide(
        issue("Graph breaks in the LoRA layer", "See the attempts linked below."),
        RULES,
        existing_prs=prs,
    )
    assert "many_prs" in names(spread)
    assert spread.verdict == "needs-decision"


def test_from_user_code_is_not_a_reproduction() -> None:
    body = """torch._dynamo.exc.Unsupported: graph break

from user code:
   File "/home/u/lib/model.py", line 10, in forward
    return self.base(x)
"""
    decision = decide(issue("Dynamo graph break", body), RULES)
    assert "reproduction" not in names(decision)


def test_a_wrong_result_is_its_own_evidence() -> None:
    body = """After merging, the model gives different outputs than before merging.

```python
merged = model.merge_and_unload()
print(merged(x)[0, :3])
```

Expected tensor([0.12, 0.40, 0.33]) but got tensor([0.98, 0.01, 0.01]). No error is raised.
peft 0.11.1, torch 2.3.0
"""
    decision = decide(issue("merge_and_unload changes outputs", body), RULES)
    assert "wrong_result" in names(decision)
    assert decision.verdict == "actionable"
    unclear = decide(issue("Merged model outputs are wrong", "They are wrong. peft 0.11"), RULES)
    assert not any("traceback" in want for want in unclear.missing)


VISION_TREE = RepoTree.from_paths(
    "pytorch/vision",
    "abc",
    ["torchvision/__init__.py", "torchvision/ops/boxes.py", "test/test_ops.py"],
)
VISION_BODY = """`batched_nms` drops boxes of the last class.

```python
import torch, torchvision
keep = torchvision.ops.batched_nms(boxes, scores, idxs, 0.5)
```

```
Traceback (most recent call last):
  File "/home/u/repro.py", line 4, in <module>
  File "/usr/lib/python3.10/site-packages/torchvision/ops/boxes.py", line 75, in batched_nms
IndexError: index 3 is out of bounds for dimension 0 with size 3
```
torchvision 0.18.0, torch 2.3.0
"""


def test_code_pointers_come_from_the_tree_not_the_repository_name() -> None:
    subject = issue("batched_nms IndexError", VISION_BODY, repo="pytorch/vision")
    with_tree = decide(subject, RULES, tree=VISION_TREE)
    pointer = next(s for s in with_tree.signals if s.name == "code_pointer")
    assert pointer.evidence.endswith("torchvision/ops/boxes.py")
    assert with_tree.verdict == "actionable"
    assert "a pointer to the code involved" not in " ".join(with_tree.missing)
    # Without a tree, today's rule: the repository's name ("vision") is not the package.
    assert "code_pointer" not in names(decide(subject, RULES))


def test_other_libraries_in_a_traceback_are_not_pointers() -> None:
    body = VISION_BODY.replace("torchvision/ops/boxes.py", "other_lib/ops/boxes.py")
    subject = issue("batched_nms IndexError", body, repo="pytorch/vision")
    assert "code_pointer" not in names(decide(subject, RULES, tree=VISION_TREE))


@given(st.text(alphabet="abc de.\n", min_size=1, max_size=400), st.data())
def test_quotes_start_and_end_at_word_or_line_boundaries(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start, len(text)))
    quote = snippet(make_part("body", text), start, end).removeprefix("body: ")
    words = quote.removesuffix("...").split()
    if not words:
        return
    tokens = text.split()
    # A whole word of the text, not the tail of one ("a..." in the text itself loses its
    # dots to removesuffix, so a word that starts a token is enough).
    assert any(token.startswith(words[0]) for token in tokens)
    if not quote.endswith("..."):
        assert words[-1] in tokens  # and it ends with a whole word


def test_quote_of_a_match_inside_a_long_line_is_trimmed_to_words() -> None:
    text = "x" * 10 + " Here the error for lars: happens, said @user: edited. Error messaging" * 3
    start = text.index("error for lars")
    quote = snippet(make_part("body", text), start, start + 14)
    assert quote.startswith("body: ")
    first = quote.removeprefix("body: ").split()[0]
    assert first in text.split()
