"""agent-dispatch: triage GitHub issues for autonomous coding agents and dispatch them."""
