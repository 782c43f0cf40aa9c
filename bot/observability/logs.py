"""Logging with per-delivery context, secret redaction, and Sentry.

Every record carries delivery, event, installation, repo and issue (a dash when a
record has none), and no secret reaches a log line or a Sentry event.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, MutableMapping
from typing import Any

from bot.config.settings import Settings

CONTEXT_FIELDS = ("delivery", "event", "installation", "repo", "issue")
LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [delivery=%(delivery)s event=%(event)s "
    "installation=%(installation)s repo=%(repo)s issue=%(issue)s] %(message)s"
)
# Token shapes that must never be printed even when we did not configure them.
TOKEN_PATTERNS = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
)
REDACTED = "[redacted]"


class Redactor:
    """Replaces configured secrets and anything shaped like a token."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        values = [
            s.get_secret_value()
            for s in (
                settings.webhook_secret,
                settings.private_key,
                settings.slack_token,
                settings.sentry_dsn,
            )
            if s is not None
        ]
        return cls(values)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return TOKEN_PATTERNS.sub(REDACTED, value)

    def deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value


class ContextFilter(logging.Filter):
    """Fills missing context fields and redacts secrets from the final message."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        for field in CONTEXT_FIELDS:
            if not hasattr(record, field):
                setattr(record, field, "-")
        message = record.getMessage()
        clean = self._redactor.text(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


class DeliveryLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger bound to one delivery's context."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def bind(logger: logging.Logger, **context: Any) -> DeliveryLogger:
    return DeliveryLogger(logger, {k: ("-" if v is None else v) for k, v in context.items()})


def configure_logging(settings: Settings, redactor: Redactor) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(ContextFilter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def init_sentry(settings: Settings, redactor: Redactor, *, transport: Any = None) -> bool:
    """Send errors to Sentry when a DSN is set; events never carry secrets or bodies.

    Frame variables are off: a handler's locals hold payloads, issue text and tokens.
    `transport` replaces Sentry's own (tests capture events with it).
    """
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        return scrub_sentry_event(event, redactor)

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        integrations=[AioHttpIntegration()],
        before_send=before_send,  # type: ignore[arg-type]
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        **({"transport": transport} if transport is not None else {}),
    )
    return True


def _frames(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Every stack frame of an event's exceptions and threads."""
    frames: list[dict[str, Any]] = []
    for kind in ("exception", "threads"):
        for value in (event.get(kind) or {}).get("values") or []:
            frames.extend((value.get("stacktrace") or {}).get("frames") or [])
    return frames


def scrub_sentry_event(event: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """No request body, cookies, signature or auth headers, frame variables, or secrets."""
    for frame in _frames(event):
        frame.pop("vars", None)
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                k: v
                for k, v in headers.items()
                if k.lower()
                not in {"authorization", "cookie", "x-hub-signature-256", "x-hub-signature"}
            }
    cleaned: dict[str, Any] = redactor.deep(event)
    return cleaned
