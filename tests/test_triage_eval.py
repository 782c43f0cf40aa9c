"""The evaluation on the real issues of ../shared/data keeps its targets (catches regressions)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.shared_data import DATA, needs_data

BENCH = Path(__file__).resolve().parent.parent / "bench" / "eval_actionability.py"
pytestmark = needs_data


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_actionability", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_each_held_out_repository_meets_the_targets() -> None:
    """Leave-one-repository-out: tuned on two repositories, scored on the third."""
    bench = _bench()
    folds = bench.leave_one_out(DATA)
    assert len(folds) == 3
    for fold in folds:
        assert len(fold.test.outcomes) >= 8, fold.held_out
        assert fold.test.accuracy >= bench.ACCURACY_TARGET, (fold.held_out, fold.test)
        assert fold.test.precision >= bench.PRECISION_TARGET, (fold.held_out, fold.test)


def test_no_per_repository_configuration_in_the_evaluation() -> None:
    source = BENCH.read_text()
    assert "maintainers=" not in source and "package_names=" not in source


def test_first_triage_overall_with_default_rules() -> None:
    report = _bench().evaluate(DATA)
    assert len(report.outcomes) >= 30
    assert report.accuracy >= 0.85, report
    assert report.precision >= 0.85, report


def test_later_prs_never_make_a_wrong_actionable_and_hardware_agrees() -> None:
    report = _bench().evaluate(DATA, xref=True)
    assert report.precision >= 0.85
    assert report.hardware_agreement >= 0.85
    for fold in _bench().leave_one_out(DATA, xref=True):
        assert fold.test.precision >= 0.85, fold.held_out
