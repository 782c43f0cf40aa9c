"""What commands print for people and scripts (logging is for the service)."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


class UsageError(Exception):
    """A mistake in what the user asked for: one line on stderr, exit status 2."""
