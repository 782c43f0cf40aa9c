"""Loading `.github/agent-dispatch.yml` from the repository, with org-wide defaults.

The org's `.github` repository may hold the same file; the repository's own file is
merged over it. A broken file never stops the bot: the defaults stay in force and the
problem, naming the field, is reported (in the triage comment, or a log line).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import yaml
from cachetools import TTLCache
from pydantic import ValidationError

from bot.config.repo import CONFIG_PATH, RepoConfig

log = logging.getLogger(__name__)

CACHE_SECONDS = 300
MAX_CONFIG_BYTES = 256 * 1024


class FileReader(Protocol):
    async def get_file(self, repo: str, path: str, ref: str | None = None) -> str | None: ...


@dataclass(frozen=True)
class LoadedConfig:
    config: RepoConfig
    # Problems with the files, each naming the file and the field; empty when all is well.
    errors: tuple[str, ...] = ()


def describe_validation_error(source: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:5]:
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problems.append(f"`{field}`: {error['msg']}")
    return f"{source}: " + "; ".join(problems)


def parse_config_text(source: str, text: str) -> tuple[dict[str, Any], str | None]:
    """YAML text to a mapping; an error message instead when it is not one."""
    if len(text.encode()) > MAX_CONFIG_BYTES:
        return {}, f"{source}: file is larger than {MAX_CONFIG_BYTES} bytes"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        return {}, f"{source}: not valid YAML{where}: {problem}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return {}, f"{source}: the top level must be a mapping, not {type(data).__name__}"
    return data, None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def build_config(org: tuple[str, str | None] | None, repo: tuple[str, str | None]) -> LoadedConfig:
    """Pure: org defaults then the repository's file, each validated; a bad layer is dropped."""
    errors: list[str] = []
    layers: list[tuple[str, dict[str, Any]]] = []
    for source, text in ([org] if org else []) + [repo]:
        if text is None:
            continue
        data, error = parse_config_text(source, text)
        if error:
            errors.append(error)
            continue
        try:
            RepoConfig.model_validate(data)
        except ValidationError as exc:
            errors.append(describe_validation_error(source, exc))
            continue
        layers.append((source, data))
    merged: dict[str, Any] = {}
    for _, data in layers:
        merged = merge(merged, data)
    try:
        return LoadedConfig(RepoConfig.model_validate(merged), tuple(errors))
    except ValidationError as exc:  # valid layers that conflict once merged
        return LoadedConfig(
            RepoConfig(), (*errors, describe_validation_error("merged configuration", exc))
        )


class ConfigLoader:
    """Reads and caches each repository's configuration for a few minutes."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self._cache: TTLCache[str, LoadedConfig] = TTLCache(maxsize=1024, ttl=ttl)
        self._locks: dict[str, asyncio.Lock] = {}

    def forget(self, repo: str) -> None:
        """Drop a cached config (a push changed the file)."""
        self._cache.pop(repo, None)

    def forget_owner(self, owner: str) -> None:
        """Drop every cached config of `owner` (a push changed the org's defaults)."""
        for repo in [r for r in self._cache if r.split("/", 1)[0] == owner]:
            self._cache.pop(repo, None)

    async def load(self, reader: FileReader, repo: str) -> LoadedConfig:
        cached = self._cache.get(repo)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(repo, asyncio.Lock())
        async with lock:
            cached = self._cache.get(repo)
            if cached is not None:
                return cached
            owner = repo.split("/", 1)[0]
            repo_text, org_text = await asyncio.gather(
                reader.get_file(repo, CONFIG_PATH),
                reader.get_file(f"{owner}/.github", CONFIG_PATH)
                if not repo.endswith("/.github")
                else _none(),
            )
            loaded = build_config(
                (f"{owner}/.github:{CONFIG_PATH}", org_text) if org_text is not None else None,
                (f"{repo}:{CONFIG_PATH}", repo_text),
            )
            for error in loaded.errors:
                log.warning("configuration problem, defaults in force: %s", error)
            self._cache[repo] = loaded
            return loaded


async def _none() -> None:
    return None
