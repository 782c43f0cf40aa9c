"""Signed, expiring links to stored prompts, with a key of their own.

Anyone holding a link can read that one prompt until it expires, so the key is not the
webhook secret (a leaked link key cannot forge deliveries, a new App cannot mint links),
and a private repository's links live shorter. The key comes from BOT_ARTIFACT_LINK_KEY
or from a key file generated once beside the database; deleting that file (or
`agent-dispatch artifacts revoke --all`) makes every link ever issued invalid.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from bot.config.settings import Settings
from bot.store.artifacts import ArtifactRef

KEY_BYTES = 32
# A Unix time of more digits is no expiry we issued (and int() of 5,000 digits is slow).
MAX_EXPIRES_DIGITS = 12


def read_or_create_key(path: Path) -> bytes:
    """The key in `path`, made (random, mode 600) the first time; safe against a race."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
    return key


def rotate_key(path: Path) -> bytes:
    """A new key in `path`: every link signed with the old one stops working."""
    path.unlink(missing_ok=True)
    return read_or_create_key(path)


class LinkSigner:
    """Signs artifact paths; decides how long a repository's links live."""

    def __init__(
        self,
        key: bytes,
        public_url: str,
        *,
        ttl_seconds: float = 7 * 24 * 3600,
        private_ttl_seconds: float = 24 * 3600,
    ) -> None:
        if len(key) < 16:
            raise ValueError("an artifact link key needs at least 16 bytes")
        self._key = key
        self._base = public_url.rstrip("/")
        self._ttl = ttl_seconds
        self._private_ttl = private_ttl_seconds
        # Repositories seen public in a verified delivery; any other is treated as private.
        self._public: dict[str, bool] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner:
        configured = settings.artifact_link_key
        key = (
            configured.get_secret_value().encode()
            if configured is not None
            else read_or_create_key(settings.link_key_path)
        )
        return cls(
            key,
            settings.public_url,
            ttl_seconds=settings.artifact_link_ttl_seconds,
            private_ttl_seconds=settings.artifact_link_private_ttl_seconds,
        )

    def note_visibility(self, repo: str, *, private: bool) -> None:
        """What a verified delivery said about `repo` (unknown repositories count as private)."""
        self._public[repo] = not private

    def expires_for(self, ref: ArtifactRef, *, now: float | None = None) -> float:
        """When a link made now for `ref` stops working."""
        lifetime = self._ttl if self._public.get(ref.repo, False) else self._private_ttl
        return (time.time() if now is None else now) + lifetime

    def _signature(self, path: str, expires: int) -> str:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, ref: ArtifactRef, *, expires: float | None = None) -> str:
        stamp = int(self.expires_for(ref) if expires is None else expires)
        return f"{self._base}{ref.path}?expires={stamp}&sig={self._signature(ref.path, stamp)}"

    def valid(
        self, path: str, expires: str | None, signature: str | None, *, now: float | None = None
    ) -> bool:
        if not expires or not signature or len(expires) > MAX_EXPIRES_DIGITS:
            return False
        if not (expires.isascii() and expires.isdigit()):  # "²".isdigit() is True
            return False
        stamp = int(expires)
        if stamp < (time.time() if now is None else now):
            return False
        return signature.isascii() and hmac.compare_digest(self._signature(path, stamp), signature)
