"""Evaluate the actionability engine on the real issues in /work/shared/data.

    .venv/bin/python bench/eval_actionability.py [--data DIR] [--no-maintainers] [--verbose]

Decides every issue of the `*.export.json` files (as first triaged: no timeline) and of the
`*.xref.export.json` files (cross-referenced PRs passed as existing_prs), compares with
truth.json (issues with `actionable: null` are skipped) and prints the confusion matrix,
accuracy, precision and recall of `actionable`, and hardware agreement.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.repo import RepoConfig
from bot.config.triage import TriageRules
from bot.mirror.formats import parse_coordinator_export
from bot.models import ExistingPR, Issue, PRState, TriageDecision
from bot.triage.pipeline import FixedView, assess

DEFAULT_DATA = Path("/work/shared/data")

# What each repository would put in `triage.maintainers`: its public core maintainers. The
# exports carry no author_association, so this is how maintainer comments are recognised.
REPO_MAINTAINERS: dict[str, list[str]] = {
    "huggingface/peft": ["BenjaminBossan", "githubnemo", "pacman100", "younesbelkada", "sayakpaul"],
    "huggingface/transformers": [
        "amyeroberts",
        "ArthurZucker",
        "Cyrilvallez",
        "gante",
        "LysandreJik",
        "MekkCyber",
        "muellerzr",
        "Rocketknight1",
        "sgugger",
        "SunMarc",
        "ydshieh",
        "younesbelkada",
        "zucchini-nlp",
    ],
    "vllm-project/vllm": [
        "comaniac",
        "DarkLight1337",
        "hmellor",
        "Isotr0py",
        "jeejeelee",
        "mgoin",
        "njhill",
        "robertgshaw2-redhat",
        "simon-mo",
        "tlrmchlsmth",
        "WoosukKwon",
        "youkaichao",
        "ywang96",
        "zhuohan123",
    ],
}


@dataclass
class Outcome:
    repo: str
    number: int
    truth: bool
    truth_hardware: str | None
    decision: TriageDecision


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    hardware_total: int = 0
    hardware_agree: int = 0

    def count(self, truth: bool, predicted: bool) -> int:
        return sum(
            1 for o in self.outcomes if o.truth == truth and o.decision.actionable == predicted
        )

    @property
    def accuracy(self) -> float:
        right = self.count(True, True) + self.count(False, False)
        return right / len(self.outcomes) if self.outcomes else 0.0

    @property
    def precision(self) -> float:
        predicted = self.count(True, True) + self.count(False, True)
        return self.count(True, True) / predicted if predicted else 0.0

    @property
    def recall(self) -> float:
        actual = self.count(True, True) + self.count(True, False)
        return self.count(True, True) / actual if actual else 0.0

    @property
    def hardware_agreement(self) -> float:
        return self.hardware_agree / self.hardware_total if self.hardware_total else 0.0


def rules_for(repo: str, with_maintainers: bool) -> TriageRules:
    return TriageRules(maintainers=REPO_MAINTAINERS.get(repo, []) if with_maintainers else [])


def timeline_prs(issue: Issue) -> list[ExistingPR]:
    """PRs cross-referenced on the timeline, as the existing-PR check would pass them."""
    states: dict[str, PRState] = {"MERGED": "merged", "CLOSED": "closed"}
    prs: dict[int, ExistingPR] = {}
    for event in issue.timeline:
        if event.type != "CrossReferencedEvent" or event.source_type != "PullRequest":
            continue
        if event.source_number is None or event.source_number in prs:
            continue
        prs[event.source_number] = ExistingPR(
            number=event.source_number,
            state=states.get((event.source_state or "").upper(), "open"),
            url=event.source_url,
            title=event.source_title,
            repo=event.source_repo or issue.repo,
            found_by="timeline",
        )
    return list(prs.values())


def _hardware_matches(decision: TriageDecision, truth: str | None) -> bool:
    first = decision.hardware[0] if decision.hardware else None
    return first == truth


def evaluate(
    data_dir: Path = DEFAULT_DATA, *, xref: bool = False, with_maintainers: bool = True
) -> Report:
    truth: dict[tuple[str, int], dict[str, Any]] = {
        (t["repo"], t["number"]): t for t in json.loads((data_dir / "truth.json").read_text())
    }
    pattern = "*.xref.export.json" if xref else "*.export.json"
    report = Report()
    for path in sorted(data_dir.glob(pattern)):
        if not xref and path.name.endswith(".xref.export.json"):
            continue
        for issue in parse_coordinator_export(json.loads(path.read_text())):
            expected = truth.get((issue.repo, issue.number))
            if expected is None:
                continue
            prs = timeline_prs(issue) if xref else []
            config = RepoConfig(triage=rules_for(issue.repo, with_maintainers))
            decision = assess(issue, FixedView(prs=prs), config, bot_login=None).decision
            report.hardware_total += 1
            report.hardware_agree += _hardware_matches(decision, expected.get("hardware"))
            if expected.get("actionable") is None:
                continue
            report.outcomes.append(
                Outcome(
                    issue.repo,
                    issue.number,
                    bool(expected["actionable"]),
                    expected.get("hardware"),
                    decision,
                )
            )
    return report


def render(title: str, report: Report, verbose: bool) -> str:
    tp, fn = report.count(True, True), report.count(True, False)
    fp, tn = report.count(False, True), report.count(False, False)
    lines = [
        f"== {title}: {len(report.outcomes)} issues judged ==",
        "                  predicted actionable   predicted not",
        f"truth actionable  {tp:>20}   {fn:>13}",
        f"truth not         {fp:>20}   {tn:>13}",
        f"accuracy {report.accuracy:.1%}  precision {report.precision:.1%}  recall {report.recall:.1%}  "
        f"hardware agreement {report.hardware_agree}/{report.hardware_total} ({report.hardware_agreement:.1%})",
    ]
    verdicts: dict[str, int] = {}
    for outcome in report.outcomes:
        if outcome.truth:
            verdicts[outcome.decision.verdict] = verdicts.get(outcome.decision.verdict, 0) + 1
    lines.append(f"verdicts given to truly actionable issues: {dict(sorted(verdicts.items()))}")
    for outcome in report.outcomes:
        wrong = outcome.truth != outcome.decision.actionable
        if verbose or wrong:
            mark = "WRONG" if wrong else "ok   "
            lines.append(
                f"  {mark} {outcome.repo}#{outcome.number} truth={outcome.truth!s:5} "
                f"hw={outcome.truth_hardware or '-'}/{','.join(outcome.decision.hardware) or '-'} "
                f"{outcome.decision.summary}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--no-maintainers", action="store_true", help="configure no maintainers")
    parser.add_argument("--verbose", "-v", action="store_true", help="list every issue")
    args = parser.parse_args(argv)
    maintainers = not args.no_maintainers
    label = "with maintainers" if maintainers else "no maintainers configured"
    for xref in (False, True):
        kind = "xref exports (timeline PRs as existing_prs)" if xref else "exports (first triage)"
        report = evaluate(args.data, xref=xref, with_maintainers=maintainers)
        sys.stdout.write(render(f"{kind}, {label}", report, args.verbose) + "\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
