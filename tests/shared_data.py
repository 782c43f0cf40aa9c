"""Where the real issue data lives: `../shared/data`, next to the repository.

Found relative to this file, so the same tests run from /work/main and from any worktree
beside it. Where the directory is missing, the tests that need it skip with a reason that
names the expected path, and the session header says so (never silently).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"
MISSING = f"real issue data not found at {DATA} (put the shared directory next to the repository)"

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=MISSING)


def data_file(name: str) -> Path:
    """`DATA / name`, or skip the calling test with the reason above."""
    path = DATA / name
    if not path.is_file():
        pytest.skip(MISSING)
    return path


def report_header() -> str:
    return f"shared data: {DATA}" if DATA.is_dir() else f"shared data: MISSING; {MISSING}"
