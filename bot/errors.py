"""Exceptions that tell the delivery workers what to do with a failed job."""

from __future__ import annotations


class RetryLater(Exception):
    """Put the job back and run it again after `delay` seconds (e.g. a rate limit)."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


class PermanentError(Exception):
    """Retrying cannot help (e.g. a 404 or 422 from GitHub): dead-letter at once."""
