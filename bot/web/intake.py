"""Verification of one webhook request, before anything is stored.

Pure functions over headers and bytes, so every rejection is a clear, testable answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

# Edits and comments wait a little so a burst about one issue is handled once.
DEBOUNCED_EVENTS = frozenset(
    {
        ("issues", "edited"),
        ("issue_comment", "created"),
        ("issue_comment", "edited"),
        ("issue_comment", "deleted"),
        ("pull_request", "edited"),
        ("pull_request", "synchronize"),
    }
)
DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
EVENT_NAME = re.compile(r"^[a-z_]{1,64}$")


@dataclass(frozen=True)
class Rejection(Exception):
    status: int
    reason: str


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> None:
    """Only X-Hub-Signature-256 counts: a missing one or a SHA-1 one is refused."""
    if not header:
        raise Rejection(401, "missing X-Hub-Signature-256 (SHA-1 signatures are not accepted)")
    if not header.isascii():  # a hex digest is ASCII; other bytes must not reach .encode()
        raise Rejection(401, "signature does not match the webhook secret")
    if not hmac.compare_digest(signature_for(secret, body).encode(), header.strip().encode()):
        raise Rejection(401, "signature does not match the webhook secret")


def check_headers(event: str | None, delivery_id: str | None) -> tuple[str, str]:
    if not event:
        raise Rejection(400, "missing X-GitHub-Event header")
    if not EVENT_NAME.match(event):
        raise Rejection(400, "malformed X-GitHub-Event header")
    if not delivery_id:
        raise Rejection(400, "missing X-GitHub-Delivery header")
    if not DELIVERY_ID.match(delivery_id):
        raise Rejection(400, "malformed X-GitHub-Delivery header")
    return event, delivery_id


def parse_payload(body: bytes) -> dict[str, Any]:
    """The payload as an object whose routing fields have the types GitHub sends.

    A signed payload GitHub would never send (nesting deeper than the parser goes, text
    that is not Unicode, ids past 64 bits, an object where a string belongs) is a 400 here,
    so nothing odd reaches the inbox or the handlers.
    """
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise Rejection(400, f"body is not valid JSON: {exc.__class__.__name__}") from None
    except RecursionError:
        raise Rejection(400, "payload is nested too deeply") from None
    if not isinstance(data, dict):
        raise Rejection(400, "payload must be a JSON object")
    check_shape(data)
    if _may_hold_surrogates(body) and not _is_unicode(data):
        raise Rejection(400, "payload holds text that is not valid Unicode (a lone surrogate)")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Fields the bot routes on or reads before anything else: (path, kind). A kind applies
# only when the field is present (a push has no issue); "id" is a positive 63-bit integer.
SHAPE: tuple[tuple[tuple[str, ...], str], ...] = (
    (("action",), "str"),
    (("installation",), "object"),
    (("installation", "id"), "id"),
    (("repository",), "object"),
    (("repository", "id"), "id"),
    (("repository", "full_name"), "repo"),
    (("issue",), "object"),
    (("issue", "number"), "id"),
    (("issue", "labels"), "list"),
    (("pull_request",), "object"),
    (("pull_request", "number"), "id"),
    (("comment",), "object"),
    (("comment", "id"), "id"),
    (("comment", "body"), "text"),
    (("comment", "user"), "object"),
    (("comment", "user", "login"), "str"),
    (("sender",), "object"),
    (("sender", "login"), "str"),
    (("sender", "type"), "str"),
    (("label",), "object"),
    (("label", "name"), "str"),
    (("changes",), "object"),
    (("hook",), "object"),
)
MAX_ID = 2**63 - 1
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")


def _fits(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "text":
        return value is None or isinstance(value, str)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    if kind == "repo":
        return isinstance(value, str) and REPO_NAME.match(value) is not None
    # "id": bool is an int in Python, never in GitHub's payloads
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def check_shape(data: dict[str, Any]) -> None:
    """Refuse (400) a payload whose routing fields have types GitHub never sends."""
    for path, kind in SHAPE:
        value: Any = data
        for key in path:
            if not isinstance(value, dict) or key not in value:
                value = None
                break
            value = value[key]
        else:
            if not _fits(value, kind):
                raise Rejection(400, f"payload field {'.'.join(path)} is not a valid {kind}")


# A lone surrogate arrives as a \uD800-\uDFFF escape, or as CESU-style bytes (ED A0-BF).
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _may_hold_surrogates(body: bytes) -> bool:
    return _SURROGATE_HINT.search(body) is not None


def _is_unicode(data: dict[str, Any]) -> bool:
    """Whether every string can be stored as UTF-8 (paired surrogates decode to one code point)."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def debounce_for(event: str, data: dict[str, Any], seconds: float) -> float:
    action = data.get("action")
    return seconds if isinstance(action, str) and (event, action) in DEBOUNCED_EVENTS else 0.0
