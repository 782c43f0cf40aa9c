"""Fault-injection kill switch for the chaos suite; inert unless BOT_CRASHPOINTS is set.

`BOT_CRASHPOINTS="slack_post:0.5,github_write:0.1"` makes the process SIGKILL itself
with that probability each time it reaches the named point, so a test can stop it
exactly where a real crash would hurt most (just before a write whose outcome matters).
"""

from __future__ import annotations

import os
import random
import signal

# Just before / just after a GitHub write or a Slack post (its answer not yet recorded),
# and between the rows of an intake group commit.
POINTS = ("github_write", "github_written", "slack_post", "slack_posted", "group_commit")


def _parse(spec: str) -> dict[str, float]:
    odds = {}
    for part in spec.split(","):
        name, _, chance = part.strip().partition(":")
        if name in POINTS:
            odds[name] = float(chance or 1.0)
    return odds


_ODDS = _parse(os.environ.get("BOT_CRASHPOINTS", ""))


def crashpoint(name: str) -> None:
    """Die here (SIGKILL, no clean-up) when the environment asks for it."""
    chance = _ODDS.get(name)
    if chance is not None and random.random() < chance:
        os.write(2, f"crashpoint {name}: SIGKILL\n".encode())  # for the chaos report
        os.kill(os.getpid(), signal.SIGKILL)
