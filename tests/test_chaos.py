"""The fault-injection suite, short form: kills, GitHub failures and a Slack outage (about
a minute). The long form is bench/chaos.py."""

from __future__ import annotations

from pathlib import Path

from tests.chaos import Plan, run


async def test_nothing_lost_or_doubled_under_kills_github_faults_and_a_slack_outage(
    tmp_path: Path,
) -> None:
    result = await run(Plan(), tmp_path, log=print)
    summary = f"{result.line()} ({result.kills} kills): {result.problems}"
    assert result.kills >= Plan().kills, summary
    assert (result.lost, result.doubled, result.server_errors) == (0, 0, 0), summary
    assert result.dead_good == 0, summary
    assert result.refused > 0 and result.comments > 0 and result.slack_messages > 0, summary
