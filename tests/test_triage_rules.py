"""Table-driven cases for each triage signal and each verdict."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.config.triage import DEFAULT_WEIGHTS, TriageRules
from bot.models import Comment, ExistingPR, Issue, RelatedIssue
from bot.triage.engine import decide

RULES = TriageRules(maintainers=["maint"])
DESCRIPTION = "Loading the adapter fails every time after the upgrade, on a plain single GPU setup."
GOOD_BODY = f"""{DESCRIPTION}

```python
from peft import PeftModel
model = PeftModel.from_pretrained(base, "adapter")
```

Traceback (most recent call last):
  File "/usr/lib/python3.10/site-packages/peft/peft_model.py", line 278, in from_pretrained
  File "/usr/lib/python3.10/site-packages/peft/tuners/lora.py", line 348, in merge
KeyError: 'base_model.model.lm_head'

peft version 0.11.1, torch 2.3.0
"""


def issue(
    title: str = "`load_adapter` fails with KeyError",
    body: str = GOOD_BODY,
    *,
    labels: list[str] | None = None,
    comments: list[tuple[str, str]] | None = None,
    author: str = "reporter",
    association: str | None = None,
    reactions: dict[str, int] | None = None,
    number: int = 7,
) -> Issue:
    return Issue(
        repo="huggingface/peft",
        number=number,
        title=title,
        body=body,
        author=author,
        author_association=association,
        labels=labels or [],
        reactions=reactions or {},
        comments=[Comment(author=who, body=text) for who, text in comments or []],
    )


def names(decision) -> set[str]:
    return {s.name for s in decision.signals}


# (case id, issue, signal expected present)
SIGNAL_CASES = [
    ("traceback", issue(), "traceback"),
    ("error message", issue(body=f"{DESCRIPTION}\nValueError: bad shape (3, 4)"), "error_message"),
    (
        "error colon",
        issue(body=f"{DESCRIPTION}\nit fails with error: assert x == y"),
        "error_message",
    ),
    ("reproduction fenced", issue(), "reproduction"),
    (
        "reproduction section",
        issue(
            body=f"{DESCRIPTION}\n### Reproduction\nfrom peft import LoraConfig\ncfg = LoraConfig(r=8)\n"
        ),
        "reproduction",
    ),
    (
        "reproduction notebook",
        issue(body=f"{DESCRIPTION} https://colab.research.google.com/drive/abc"),
        "reproduction",
    ),
    ("code pointer path", issue(), "code_pointer"),
    (
        "code pointer line link",
        issue(body=f"{DESCRIPTION} https://github.com/huggingface/peft/blob/abc/src/peft/x.py#L12"),
        "code_pointer",
    ),
    ("title names code", issue(), "title_names_code"),
    (
        "code identifier",
        issue(body=f"{DESCRIPTION} calling `merge_and_unload` breaks"),
        "code_identifier",
    ),
    ("versions", issue(), "versions"),
    (
        "scoped ask typo",
        issue(body=f"{DESCRIPTION} There is a typo in the docstring."),
        "scoped_ask",
    ),
    (
        "scoped ask mimic",
        issue(body=f"{DESCRIPTION} Please mimic the 4bit optimizer."),
        "scoped_ask",
    ),
    (
        "fix proposed",
        issue(body=f"{DESCRIPTION} It should just be `x.dtype` here."),
        "fix_proposed",
    ),
    ("maintainer authored", issue(author="maint"), "maintainer_authored"),
    (
        "maintainer by association",
        issue(author="someone", association="MEMBER"),
        "maintainer_authored",
    ),
    (
        "maintainer confirms",
        issue(comments=[("maint", "I can confirm this on main.")]),
        "maintainer_confirms",
    ),
    (
        "maintainer invites pr",
        issue(comments=[("maint", "A PR for this would be great!")]),
        "maintainer_invites_pr",
    ),
    (
        "maintainer points to code",
        issue(
            comments=[
                ("maint", "See https://github.com/huggingface/peft/blob/main/src/peft/a.py#L3")
            ]
        ),
        "maintainer_points_to_code",
    ),
    (
        "contributions welcome label",
        issue(labels=["Contributions Welcome"]),
        "contributions_welcome_label",
    ),
    (
        "label spelled with dashes",
        issue(labels=["contributions-welcome"]),
        "contributions_welcome_label",
    ),
    ("no description", issue(body="deleted"), "no_description"),
    (
        "screenshot only",
        issue(body=f"{DESCRIPTION}\n![image](https://github.com/user-attachments/assets/1)"),
        "screenshot_only_error",
    ),
    ("vague title", issue(title="done"), "vague_title"),
    ("question label", issue(labels=["Question"]), "question"),
    ("question title", issue(title="How to load an adapter on two models?"), "question"),
    ("usage template", issue(title="[Usage]: loading adapters"), "question"),
    (
        "design ask",
        issue(title="[Feature]: bitsandbytes support", labels=["feature request"]),
        "design_ask",
    ),
    ("rfc", issue(title="[RFC]: new adapter API"), "design_ask"),
    ("decision label", issue(labels=["Needs Input"]), "decision_label"),
    (
        "info requested",
        issue(comments=[("maint", "Could you share the full traceback?")]),
        "info_requested",
    ),
    ("waiting for info label", issue(labels=["Waiting for Info"]), "waiting_for_info_label"),
    (
        "cannot reproduce",
        issue(comments=[("maint", "I cannot reproduce this on main.")]),
        "cannot_reproduce",
    ),
    ("hardware", issue(title="Crash on ROCm with gfx942"), "hardware_required"),
    (
        "reporter resolved",
        issue(comments=[("reporter", "My bad, it was a typo in my script.")]),
        "reporter_resolved",
    ),
    ("fixed claim", issue(comments=[("maint", "This has been fixed in #12.")]), "fixed_claim"),
    ("maintainer closing", issue(comments=[("maint", "Closing as stale.")]), "maintainer_closing"),
    (
        "out of scope",
        issue(comments=[("maint", "This is out of scope for the library.")]),
        "out_of_scope",
    ),
    ("not a bug", issue(comments=[("maint", "This is expected behavior.")]), "not_a_bug"),
    (
        "workaround",
        issue(comments=[("maint", "Try setting use_cache=False.")]),
        "workaround_suggested",
    ),
    ("close label", issue(labels=["Proposing to Close"]), "close_label"),
    ("duplicate phrase", issue(comments=[("maint", "Duplicate of #5")]), "duplicate"),
    ("duplicate label", issue(labels=["Duplicate"]), "duplicate"),
]


@pytest.mark.parametrize(
    ("case", "subject", "signal"), SIGNAL_CASES, ids=[c[0] for c in SIGNAL_CASES]
)
def test_signal_detected(case: str, subject: Issue, signal: str) -> None:
    decision = decide(subject, RULES)
    assert signal in names(decision), decision.signals
    found = next(s for s in decision.signals if s.name == signal)
    assert found.evidence and len(found.evidence) <= 200


ABSENT_CASES = [
    (
        "conditional fix is not a fix claim",
        issue(comments=[("maint", "Once #3 is merged it will be fixed.")]),
        "fixed_claim",
    ),
    (
        "reporter hoping is not resolved",
        issue(comments=[("reporter", "I will try and see whether it works.")]),
        "reporter_resolved",
    ),
    (
        "cannot reproduce is not a confirmation",
        issue(comments=[("maint", "I can't reproduce it.")]),
        "maintainer_confirms",
    ),
    (
        "answered request",
        issue(comments=[("maint", "Can you share the config?"), ("reporter", "Here it is")]),
        "info_requested",
    ),
    (
        "path in a python install is not a version",
        issue(body=f"{DESCRIPTION}\n/lib/python3.8/site-packages/x"),
        "versions",
    ),
    (
        "user script path is not a code pointer",
        issue(body=f"{DESCRIPTION}\n/home/me/train.py:12"),
        "code_pointer",
    ),
    (
        "env dump denies the hardware",
        issue(body=f"{DESCRIPTION}\nROCM Version: N/A\nIs XPU available: False"),
        "hardware_required",
    ),
    (
        "one body mention of multi-gpu",
        issue(body=f"{DESCRIPTION} distributed_type: MULTI_GPU"),
        "hardware_required",
    ),
    (
        "a random commenter cannot close",
        issue(comments=[("bystander", "Closing this, fixed in #4.")]),
        "maintainer_closing_decisive",
    ),
    (
        "bot comments are ignored",
        issue(comments=[("stale[bot]", "Closing as stale.")]),
        "maintainer_closing",
    ),
]


@pytest.mark.parametrize(
    ("case", "subject", "signal"), ABSENT_CASES, ids=[c[0] for c in ABSENT_CASES]
)
def test_signal_not_detected(case: str, subject: Issue, signal: str) -> None:
    decision = decide(subject, TriageRules(maintainers=["maint"], unknown_commenter_trust=0.5))
    if signal == "maintainer_closing_decisive":
        assert decision.verdict != "close-candidate"
        return
    assert signal not in names(decision), decision.signals


# (case id, issue, existing PRs, expected verdict)
VERDICT_CASES = [
    ("good report", issue(), [], "actionable"),
    (
        "maintainer invites a feature",
        issue(
            title="Add `adamw_8bit` like the existing 4bit one",
            body=DESCRIPTION,
            labels=["Feature request"],
            comments=[("maint", "A PR for this would be great")],
        ),
        [],
        "actionable",
    ),
    (
        "thin report",
        issue(
            title="it does not work well",
            body="When I train it is slow and it does not converge at all.",
        ),
        [],
        "needs-info",
    ),
    ("empty body", issue(body=""), [], "needs-info"),
    (
        "screenshot only",
        issue(
            title="model error",
            body="Loading fails with the error below, please help me fix it quickly.\n<img src='https://user-images.githubusercontent.com/1.png'>",
        ),
        [],
        "needs-info",
    ),
    ("waiting for info", issue(labels=["Waiting for Info"]), [], "needs-info"),
    (
        "unanswered info request",
        issue(comments=[("maint", "Please provide a minimal reproducer.")]),
        [],
        "needs-info",
    ),
    ("rocm", issue(title="[ROCm] crash on MI300X"), [], "needs-hardware"),
    ("apple mps", issue(title="Slow training on mps backend"), [], "needs-hardware"),
    ("multi gpu", issue(title="Hang with FSDP on 2x A100"), [], "needs-hardware"),
    ("decision label", issue(labels=["To Discuss Internally"]), [], "needs-decision"),
    (
        "new backend",
        issue(title="[Feature]: Ascend NPU support", body=DESCRIPTION),
        [],
        "needs-decision",
    ),
    (
        "usage question",
        issue(title="[Usage]: how do I load in 8bit?", labels=["usage"]),
        [],
        "question",
    ),
    (
        "question lifted by a confirmation",
        issue(labels=["usage"], comments=[("maint", "You are right, this is a bug.")]),
        [],
        "actionable",
    ),
    (
        "duplicate label with a reference",
        issue(labels=["Duplicate"], comments=[("maint", "See #42")]),
        [],
        "duplicate",
    ),
    (
        "maintainer closes in favour of an issue nobody has seen",
        issue(comments=[("maint", "Closing this in favor of #6537.")]),
        [],
        "close-candidate",
    ),
    ("proposing to close", issue(labels=["Proposing to Close"]), [], "close-candidate"),
    (
        "maintainer says fixed",
        issue(comments=[("maint", "This should be fixed in #18859 that has been merged.")]),
        [],
        "close-candidate",
    ),
    (
        "reporter self-resolved",
        issue(comments=[("reporter", "Yep, it worked.")]),
        [],
        "close-candidate",
    ),
    (
        "merged pr that closes this issue",
        issue(),
        [ExistingPR(number=3, state="merged", found_by="closing-keyword", closes=True)],
        "close-candidate",
    ),
    (
        "merged pr that only mentions this issue",
        issue(),
        [ExistingPR(number=3, state="merged", found_by="timeline")],
        "actionable",
    ),
    (
        "pr of unknown state",
        issue(),
        [ExistingPR(number=3, state="unknown", found_by="timeline")],
        "actionable",
    ),
    (
        "open pr stays actionable",
        issue(),
        [ExistingPR(number=3, state="open", found_by="timeline")],
        "actionable",
    ),
]


@pytest.mark.parametrize(
    ("case", "subject", "prs", "verdict"), VERDICT_CASES, ids=[c[0] for c in VERDICT_CASES]
)
def test_verdict(case: str, subject: Issue, prs: list[ExistingPR], verdict: str) -> None:
    decision = decide(subject, RULES, existing_prs=prs)
    assert decision.verdict == verdict, (decision.summary, decision.signals)
    assert decision.actionable is (verdict == "actionable")
    assert decision.summary.startswith(verdict)
    assert bool(decision.missing) is (verdict != "actionable")


def test_open_pr_switches_mode() -> None:
    decision = decide(
        issue(), RULES, existing_prs=[ExistingPR(number=3, state="open", found_by="timeline")]
    )
    assert decision.mode == "review-existing-pr"
    assert "#3" in decision.summary


@pytest.mark.parametrize(
    ("subject", "mode"),
    [
        (issue(), "fix"),
        (issue(labels=["Feature request"], comments=[("maint", "PRs are welcome")]), "implement"),
        (issue(title="Typo in the LoRA docs", labels=["documentation"]), "docs"),
    ],
)
def test_mode(subject: Issue, mode: str) -> None:
    assert decide(subject, RULES).mode == mode


def test_duplicate_of_from_label_reference_and_related_title() -> None:
    labelled = issue(
        labels=["Duplicate"], comments=[("maint", "Same root cause as #42")], number=50
    )
    assert decide(labelled, RULES, known_issues=[42]).duplicate_of == 42
    assert decide(labelled, RULES).duplicate_of is None  # #42 not known to exist
    assert decide(labelled, RULES).verdict == "duplicate"  # the label still says so
    twin = RelatedIssue(
        number=9, state="open", title="`load_adapter` fails with KeyError", score=0.4
    )
    assert decide(issue(number=50), RULES, related=[twin]).duplicate_of == 9
    assert decide(issue(number=50), RULES).duplicate_of is None
    maintainer = issue(comments=[("maint", "Duplicate of #12.")], number=50)
    decision = decide(maintainer, RULES, known_issues=[12])
    assert (decision.verdict, decision.duplicate_of) == ("duplicate", 12)


def test_hardware_reported_and_available_hardware_respected() -> None:
    rocm = issue(title="Crash on ROCm MI250")
    assert decide(rocm, RULES).hardware == ["rocm"]
    assert (
        decide(rocm, TriageRules(available_hardware=["cpu", "cuda", "rocm"])).verdict
        == "actionable"
    )


def test_priority_from_reactions_comments_and_labels() -> None:
    quiet = decide(issue(), RULES).priority
    loud = decide(
        issue(
            labels=["P0"],
            reactions={"THUMBS_UP": 12},
            comments=[("a", "+1"), ("b", "same problem")],
        ),
        RULES,
    ).priority
    assert loud.reactions == 14 and loud.comments == 2 and loud.labels == ["P0"]
    assert 0 <= quiet.score < loud.score <= 1


def test_unknown_commenters_count_partly() -> None:
    trusted = decide(issue(body=DESCRIPTION, comments=[("maint", "I can confirm this")]), RULES)
    unknown = decide(issue(body=DESCRIPTION, comments=[("someone", "I can confirm this")]), RULES)
    weight = {s.name: s.weight for s in unknown.signals}["maintainer_confirms"]
    assert weight == pytest.approx(DEFAULT_WEIGHTS["maintainer_confirms"] * 0.5)
    assert trusted.score > unknown.score


def test_weights_and_threshold_are_configurable() -> None:
    strict = TriageRules(threshold=0.95)
    assert decide(issue(), strict).verdict == "needs-info"
    heavy = TriageRules(weights={"versions": 0.9}, threshold=0.9)
    assert decide(issue(body=f"{DESCRIPTION} torch 2.1.0"), heavy).verdict == "actionable"


def test_unknown_weight_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown signal"):
        TriageRules(weights={"tracebak": 0.3})
    with pytest.raises(ValidationError):
        TriageRules(no_such_field=1)  # type: ignore[call-arg]


def test_label_names_are_configurable() -> None:
    rules = TriageRules(labels={"question": ["support-request"]})
    assert decide(issue(labels=["Support Request"]), rules).verdict == "question"
    assert decide(issue(labels=["Question"]), rules).verdict == "actionable"
