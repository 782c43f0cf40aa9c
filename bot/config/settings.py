"""Service settings from `BOT_*` environment variables and a local `.env` file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ENV_FILE = Path(".env")
DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


def served_url(host: str, port: int) -> str:
    """The http:// address a local client reaches the service at (a wildcard listen
    address is reached through loopback)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


class MissingWebhookSecret(RuntimeError):
    """Raised when the service would start without a way to verify deliveries."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    webhook_secret: SecretStr | None = None
    app_id: int | None = None
    private_key: SecretStr | None = None
    private_key_path: Path | None = None
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_graphql_url: str | None = None
    slack_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    sentry_dsn: SecretStr | None = None
    db: Path = Path("agent-dispatch.sqlite3")
    # Base of links (artifacts, dashboard, /setup); unset: the address served, http://HOST:PORT.
    public_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=4, ge=1, le=64)

    # Inbox durability: NORMAL survives a process crash; FULL also survives power loss.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # `serve`'s event loop: "auto" is uvloop when installed (the [fast] extra), else asyncio.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    max_body_bytes: int = 25 * 1024 * 1024
    # A kept-alive connection with no complete request for this long is closed, and a
    # request's body must arrive within `body_timeout_seconds` (else 408). aiohttp has no
    # limit for the first request's headers: the proxy's (client_header_timeout) applies.
    idle_timeout_seconds: float = Field(default=10.0, gt=0.0)
    body_timeout_seconds: float = Field(default=20.0, gt=0.0)
    # Delivery retries: attempts before dead-lettering, and the first backoff delay.
    max_attempts: int = Field(default=5, ge=1)
    retry_base_seconds: float = Field(default=2.0, ge=0.0)
    # How long a Slack notice keeps being retried (capped backoff) before it is dead.
    outbox_retry_hours: float = Field(default=24.0, gt=0.0)
    # Edits and comments wait this long so a burst about one issue is handled once.
    debounce_seconds: float = Field(default=3.0, ge=0.0)
    # How long artifact links stay valid: a public repository's, and a private one's (or
    # one whose visibility no verified delivery has shown yet).
    artifact_link_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    artifact_link_private_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    # The key that signs artifact links (never the webhook secret). Unset: a random key
    # generated once into `artifact_link_key_file` (default: beside the database).
    artifact_link_key: SecretStr | None = None
    artifact_link_key_file: Path | None = None
    # Artifact retention: the newest versions kept per issue, and the age after which
    # older versions go (0 keeps them; an issue's latest version always stays).
    artifact_keep_versions: int = Field(default=10, ge=1)
    artifact_retention_days: float = Field(default=30.0, ge=0.0)
    # Minutes between redelivery catch-up scans (0 turns it off).
    redelivery_interval_minutes: int = Field(default=10, ge=0)
    artifact_dir: Path | None = None
    log_level: str = "INFO"
    # Dashboard sign-in: the App's OAuth credentials (the manifest flow writes them as
    # BOT_CLIENT_ID / BOT_CLIENT_SECRET; BOT_GITHUB_CLIENT_ID / _SECRET work too).
    client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("client_id", "bot_client_id", "bot_github_client_id"),
    )
    client_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "client_secret", "bot_client_secret", "bot_github_client_secret"
        ),
    )
    # Web base for sign-in and links; derived from the API URL when unset.
    github_web_url: str | None = None
    # Comma-separated GitHub logins who may see deliveries and the outbox in the dashboard.
    operators: str = ""

    @model_validator(mode="after")
    def _derive_public_url(self) -> Settings:
        if not self.public_url:
            self.public_url = served_url(self.host, self.port)
        return self

    @model_validator(mode="after")
    def _derive_graphql_url(self) -> Settings:
        self.github_api_url = self.github_api_url.rstrip("/")
        if not self.github_graphql_url:
            base = self.github_api_url
            if base.endswith("/api/v3"):  # GitHub Enterprise Server
                self.github_graphql_url = base[: -len("/v3")] + "/graphql"
            else:
                self.github_graphql_url = base + "/graphql"
        if not self.github_web_url:
            base = self.github_api_url
            if base == DEFAULT_GITHUB_API_URL:
                self.github_web_url = "https://github.com"
            elif base.endswith("/api/v3"):  # GitHub Enterprise Server
                self.github_web_url = base[: -len("/api/v3")]
            else:  # a test double serves the web and API paths on one base
                self.github_web_url = base
        self.github_web_url = self.github_web_url.rstrip("/")
        return self

    @property
    def operator_logins(self) -> frozenset[str]:
        return frozenset(
            login.strip().lower() for login in self.operators.split(",") if login.strip()
        )

    @property
    def sign_in_enabled(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def dry_run(self) -> bool:
        """No App credentials: record writes instead of sending them."""
        return self.app_id is None or (self.private_key is None and self.private_key_path is None)

    @property
    def link_key_path(self) -> Path:
        return self.artifact_link_key_file or self.db.resolve().parent / "agent-dispatch.link-key"

    def app_private_key(self) -> str | None:
        if self.private_key is not None:
            return self.private_key.get_secret_value()
        if self.private_key_path is not None:
            return self.private_key_path.read_text()
        return None

    def require_webhook_secret(self) -> str:
        if self.webhook_secret is None or not self.webhook_secret.get_secret_value():
            raise MissingWebhookSecret(
                "No webhook secret: set BOT_WEBHOOK_SECRET (the secret of your GitHub App's "
                "webhook) in the environment or in .env. Without it deliveries cannot be "
                "verified, so the service will not start."
            )
        return self.webhook_secret.get_secret_value()


def ensure_local_webhook_secret(env_file: Path = DEFAULT_ENV_FILE) -> Path | None:
    """Generate a random webhook secret into `env_file` (mode 600) for a first local run.

    Returns the file's path when it wrote a secret, None when one was already configured.
    """
    if os.environ.get("BOT_WEBHOOK_SECRET"):
        return None
    existing = env_file.read_text() if env_file.exists() else ""
    if any(line.startswith("BOT_WEBHOOK_SECRET=") for line in existing.splitlines()):
        return None
    secret = secrets.token_hex(32)
    prefix = existing if not existing or existing.endswith("\n") else existing + "\n"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(prefix + f"BOT_WEBHOOK_SECRET={secret}\n")
    os.chmod(env_file, 0o600)
    return env_file
