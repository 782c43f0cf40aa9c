"""The triage decision: pure rules from issue data and repository config."""
