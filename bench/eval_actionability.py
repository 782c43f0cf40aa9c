"""Evaluate the actionability engine on the real issues of ../shared/data, leave-one-repository-out.

    .venv/bin/python bench/eval_actionability.py [--data DIR] [--verbose]

Every issue is triaged the way the bot does it: imported into a mirror (SQLite) and run
through `assess()`, so related issues, verified PRs and duplicate checks are the real
ones. `*.export.json` is the first triage (no timeline); `*.xref.export.json` carries the
PRs cross-referenced later. Issues with `actionable: null` in truth.json are skipped.

No per-repository configuration: no maintainer logins (the exports carry no
author_association, so every commenter counts as "unknown", at half a maintainer's
weight and never deciding), no package names (no tree: the name-based fallback).

Leave-one-repository-out: for each repository, the threshold is tuned on the other two
(the highest accuracy among thresholds whose precision reaches PRECISION_TARGET, the
higher threshold on ties: precision first) and the held-out repository is scored with it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config.repo import RepoConfig  # noqa: E402
from bot.config.triage import TriageRules  # noqa: E402
from bot.mirror.importer import import_file  # noqa: E402
from bot.mirror.view import MirrorStoreView  # noqa: E402
from bot.models import TriageDecision  # noqa: E402
from bot.store.mirror import MirrorStore  # noqa: E402
from bot.triage.pipeline import assess  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(11))  # 0.30 .. 0.80
PRECISION_TARGET = 0.85
ACCURACY_TARGET = 0.85


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
        """TP / predicted positives; 1.0 when nothing is called actionable (no false claim)."""
        predicted = self.count(True, True) + self.count(False, True)
        return self.count(True, True) / predicted if predicted else 1.0

    @property
    def recall(self) -> float:
        actual = self.count(True, True) + self.count(True, False)
        return self.count(True, True) / actual if actual else 1.0

    @property
    def hardware_agreement(self) -> float:
        return self.hardware_agree / self.hardware_total if self.hardware_total else 0.0

    def only(self, repos: Iterable[str]) -> Report:
        wanted = set(repos)
        return Report([o for o in self.outcomes if o.repo in wanted])


@dataclass(frozen=True)
class Fold:
    held_out: str
    threshold: float
    train: Report
    test: Report


def _truth(data_dir: Path) -> dict[tuple[str, int], dict[str, Any]]:
    rows = json.loads((data_dir / "truth.json").read_text())
    return {(t["repo"], t["number"]): t for t in rows}


def _hardware_matches(decision: TriageDecision, truth: str | None) -> bool:
    first = decision.hardware[0] if decision.hardware else None
    return first == truth


def evaluate(
    data_dir: Path = DEFAULT_DATA, *, xref: bool = False, threshold: float | None = None
) -> Report:
    """Every judged issue triaged through a mirror of its export, with default rules."""
    truth = _truth(data_dir)
    rules = TriageRules() if threshold is None else TriageRules(threshold=threshold)
    config = RepoConfig(triage=rules)
    report = Report()
    files = [
        p
        for p in sorted(data_dir.glob("*.export.json"))
        if p.name.endswith(".xref.export.json") == xref
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = MirrorStore(Path(tmp) / "mirror.sqlite3")
        for path in files:
            import_file(store, path)
        view = MirrorStoreView(store)
        for repo, number in sorted(truth):
            expected = truth[(repo, number)]
            issue = store.get_issue(repo, number)
            if issue is None:
                continue
            decision = assess(issue, view, config, bot_login=None).decision
            report.hardware_total += 1
            report.hardware_agree += _hardware_matches(decision, expected.get("hardware"))
            if expected.get("actionable") is None:
                continue
            report.outcomes.append(
                Outcome(
                    repo, number, bool(expected["actionable"]), expected.get("hardware"), decision
                )
            )
        store.close()
    return report


def tune(reports: dict[float, Report], repos: Sequence[str]) -> float:
    """The threshold with the best accuracy on `repos` among those meeting the precision target."""

    def key(threshold: float) -> tuple[bool, float, float, float]:
        train = reports[threshold].only(repos)
        return (train.precision >= PRECISION_TARGET, train.accuracy, train.precision, threshold)

    return max(reports, key=key)


def leave_one_out(data_dir: Path = DEFAULT_DATA, *, xref: bool = False) -> list[Fold]:
    reports = {t: evaluate(data_dir, xref=xref, threshold=t) for t in THRESHOLDS}
    repos = sorted({o.repo for o in next(iter(reports.values())).outcomes})
    folds = []
    for held_out in repos:
        others = [r for r in repos if r != held_out]
        threshold = tune(reports, others)
        folds.append(
            Fold(
                held_out,
                threshold,
                reports[threshold].only(others),
                reports[threshold].only([held_out]),
            )
        )
    return folds


def _counts(report: Report) -> str:
    tp, fn = report.count(True, True), report.count(True, False)
    fp, tn = report.count(False, True), report.count(False, False)
    return f"{tp}/{fn}/{fp}/{tn}"


def loo_table(folds: list[Fold]) -> str:
    lines = [
        "| held-out repository | tuned threshold | issues | accuracy | precision | recall "
        "| TP/FN/FP/TN | targets |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fold in folds:
        test = fold.test
        met = test.accuracy >= ACCURACY_TARGET and test.precision >= PRECISION_TARGET
        lines.append(
            f"| {fold.held_out} | {fold.threshold:.2f} | {len(test.outcomes)} "
            f"| {test.accuracy:.1%} | {test.precision:.1%} | {test.recall:.1%} "
            f"| {_counts(test)} | {'met' if met else 'MISSED'} |"
        )
    return "\n".join(lines)


def render(title: str, report: Report, verbose: bool) -> str:
    lines = [
        f"== {title}: {len(report.outcomes)} issues judged ==",
        f"accuracy {report.accuracy:.1%}  precision {report.precision:.1%}  "
        f"recall {report.recall:.1%}  TP/FN/FP/TN {_counts(report)}  hardware agreement "
        f"{report.hardware_agree}/{report.hardware_total} ({report.hardware_agreement:.1%})",
    ]
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
    parser.add_argument("--verbose", "-v", action="store_true", help="list every issue")
    args = parser.parse_args(argv)
    for xref in (False, True):
        kind = "xref exports (later PRs on the timeline)" if xref else "exports (first triage)"
        out = sys.stdout
        out.write(f"## Leave-one-repository-out, {kind}\n\n")
        out.write(loo_table(leave_one_out(args.data, xref=xref)) + "\n\n")
        out.write(
            render(f"{kind}, default threshold", evaluate(args.data, xref=xref), args.verbose)
        )
        out.write("\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
