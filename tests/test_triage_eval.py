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


def test_first_triage_meets_targets() -> None:
    report = _bench().evaluate(DATA)
    assert len(report.outcomes) >= 30
    assert report.accuracy >= 0.85, report
    assert report.precision >= 0.80, report


def test_without_maintainer_config_precision_holds() -> None:
    report = _bench().evaluate(DATA, with_maintainers=False)
    assert report.precision >= 0.80
    assert report.accuracy >= 0.85


def test_xref_never_calls_a_fixed_issue_actionable_wrongly() -> None:
    report = _bench().evaluate(DATA, xref=True)
    assert report.precision >= 0.80
    assert report.hardware_agreement >= 0.85
