"""Artifact links (issue 14, items 4, 5, 9, 13): own key, lifetimes, revocation, retention."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient

from bot.cli.main import main
from bot.store.artifacts import ArtifactStore
from bot.web.app import SERVICES
from bot.web.links import LinkSigner
from tests.service_fixtures import WEBHOOK_SECRET, make_settings

DAY = 24 * 3600


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_link_key_is_its_own_file_not_the_webhook_secret(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a.sqlite3")
    ref = store.put("o/r", 1, "prompt")
    signer = LinkSigner.from_settings(make_settings(tmp_path))
    key_file = tmp_path / "agent-dispatch.link-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    url = signer.url(ref, expires=4_000_000_000)
    # The same deployment with another webhook secret (a re-registered App) signs alike.
    other_secret = LinkSigner.from_settings(make_settings(tmp_path, webhook_secret="x" * 30))
    assert other_secret.url(ref, expires=4_000_000_000) == url
    # A link minted with the webhook secret (today's derivation) is refused.
    derived = hmac.new(
        WEBHOOK_SECRET.encode(), b"agent-dispatch artifact links v1", hashlib.sha256
    ).digest()
    forged = LinkSigner(derived, "http://x").url(ref, expires=4_000_000_000)
    assert not signer.valid(ref.path, query(forged)["expires"], query(forged)["sig"])
    assert signer.valid(ref.path, query(url)["expires"], query(url)["sig"])


def test_private_repositories_get_shorter_links(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "a.sqlite3")
    public, private = store.put("o/public", 1, "a"), store.put("o/private", 1, "b")
    signer = LinkSigner(b"k" * 32, "http://x", ttl_seconds=7 * DAY, private_ttl_seconds=DAY)
    signer.note_visibility("o/public", private=False)
    signer.note_visibility("o/private", private=True)
    assert signer.expires_for(public, now=0) == 7 * DAY
    assert signer.expires_for(private, now=0) == DAY
    unknown = store.put("o/unknown", 1, "c")
    assert signer.expires_for(unknown, now=0) == DAY  # not seen yet: treated as private


@pytest.mark.parametrize(
    "expires", ["\u00b2", "1" * 5000, "-1", "1e12", " 4000000000", "\uff14000000000", ""]
)
async def test_odd_expiry_is_not_found_never_an_error(bot_client: TestClient, expires: str) -> None:
    services = bot_client.app[SERVICES]
    ref = await services.artifacts.put("o/r", 1, "prompt")
    good = query(services.links.url(ref))
    response = await bot_client.get(ref.path, params={"expires": expires, "sig": good["sig"]})
    assert response.status == 404
    for path in ("/artifacts/o/r/\u00b2/1.md", "/artifacts/o/r/1/" + "9" * 5000 + ".md"):
        response = await bot_client.get(path, params=good)
        assert response.status == 404


async def test_revoked_links_stop_working_and_a_new_version_gets_a_new_link(
    bot_client: TestClient, tmp_path: Path
) -> None:
    services = bot_client.app[SERVICES]
    ref = await services.artifacts.put("o/r", 7, "secret prompt")
    url = services.links.url(ref)
    assert (await bot_client.get(ref.path, params=query(url))).status == 200
    db = str(services.settings.db)
    assert main(["--db", db, "artifacts", "revoke", "o/r#7"]) == 0
    assert (await bot_client.get(ref.path, params=query(url))).status == 404
    again = await services.artifacts.put("o/r", 7, "secret prompt")
    assert again.version == ref.version + 1
    fresh = services.links.url(again)
    assert (await bot_client.get(again.path, params=query(fresh))).status == 200
    assert main(["--db", db, "artifacts", "revoke", "o/r"]) == 0  # the whole repository
    assert (await bot_client.get(again.path, params=query(fresh))).status == 404


def test_revoke_all_replaces_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = make_settings(tmp_path)
    ref = ArtifactStore(settings.db).put("o/r", 1, "p")
    url = LinkSigner.from_settings(settings).url(ref)
    assert main(["--db", str(settings.db), "artifacts", "revoke", "--all"]) == 0
    after = LinkSigner.from_settings(settings)
    assert not after.valid(ref.path, query(url)["expires"], query(url)["sig"])


def test_retention_keeps_the_newest_versions_and_drops_old_ones(tmp_path: Path) -> None:
    store = ArtifactStore(
        tmp_path / "a.sqlite3", tmp_path / "files", keep_versions=3, retention_seconds=DAY
    )
    for n in range(10):
        store.put("o/r", 1, f"version {n}")
    assert [r.version for r in store.list("o/r", 1)] == [10, 9, 8]
    assert sorted(p.name for p in (tmp_path / "files/o/r/1").iterdir()) == [
        "10.md",
        "8.md",
        "9.md",
    ]
    old = store.put("o/r", 2, "old")
    store.put("o/r", 2, "newer")
    store.prune("o/r", 2, now=old.created_at + 2 * DAY)
    assert [r.version for r in store.list("o/r", 2)] == [2]  # the latest always stays
    store.prune("o/r", 1, now=old.created_at + 2 * DAY)
    assert [r.version for r in store.list("o/r", 1)] == [10]
