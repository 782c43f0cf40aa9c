"""The dashboard in a real browser: Playwright driving Debian's chromium, headless.

The service runs on a loopback port with a seeded database; sign-in goes through the
fake GitHub's OAuth provider exactly as a person's browser would follow it. With
UPDATE_SCREENSHOTS=1 each page's screenshot is written to docs/dashboard/ (shown in
docs/dashboard.md); otherwise screenshots go to the test's temporary directory, so a
test run never changes tracked files.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.service import create_app
from tests.conftest import FAST_RETRIES
from tests.dashboard_env import MAINTAINER, READER, prepare
from tests.dashboard_seed import PRIVATE, PUBLIC
from tests.fakegithub import FakeGitHub

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "dashboard"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} missing (./dev test installs Debian's chromium)"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def base_url(aiohttp_server: Any, fake_github: FakeGitHub, tmp_path: Path) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = prepare(fake_github, tmp_path, public_url=url)
    await aiohttp_server(await create_app(settings, github_policy=FAST_RETRIES), port=port)
    return url


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        yield launched
        await launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def signed_in_page(browser: Any, base_url: str, fake: FakeGitHub, login: str) -> Any:
    """A fresh browser context, signed in as `login` through the fake OAuth provider."""
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    fake.oauth.next_login = login
    await page.goto(f"{base_url}/ui/")
    assert page.url == f"{base_url}/ui/login"
    await page.get_by_role("link", name="Sign in with GitHub").click()
    await page.wait_for_url(f"{base_url}/ui/")
    assert await page.get_by_text(f"Signed in as {login}").is_visible()
    return page


async def test_a_maintainer_reads_every_page_and_dispatches_a_candidate(
    browser: Any, base_url: str, fake_github: FakeGitHub, shots: Path
) -> None:
    page = await signed_in_page(browser, base_url, fake_github, MAINTAINER)
    overview = page.get_by_role("table", name="Latest verdict of every triaged issue")
    assert await overview.get_by_role("rowheader", name=PRIVATE).is_visible()
    assert await page.get_by_role("img", name="Deliveries per hour").is_visible()
    await page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # Keyboard: the skip link comes first and moves focus to the content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"

    await page.get_by_role("link", name="Issues", exact=True).click()
    await page.get_by_label("Verdict").select_option("actionable")
    await page.get_by_role("button", name="Filter").click()
    assert await page.get_by_text("6 issues; page 1 of 1.").is_visible()
    await page.screenshot(path=str(shots / "issues.png"), full_page=True)

    await page.get_by_role("link", name=f"{PUBLIC}#1", exact=True).click()
    assert await page.get_by_role("heading", name="The comment as posted").is_visible()
    assert await page.locator("pre.diff .add").first.is_visible()
    await page.screenshot(path=str(shots / "issue.png"), full_page=True)

    await page.get_by_role("link", name="Dispatch runs").click()
    assert await page.get_by_role("heading", name=f"Run 1 · {PUBLIC}").is_visible()
    await page.screenshot(path=str(shots / "runs.png"), full_page=True)

    await page.get_by_role("link", name="Deliveries").click()
    await page.get_by_label("Status").select_option("dead")
    await page.get_by_role("button", name="Show").click()
    assert await page.get_by_text("GitHub answered 502 five times").first.is_visible()
    await page.screenshot(path=str(shots / "deliveries.png"), full_page=True)

    await page.get_by_role("link", name="Outbox").click()
    assert await page.get_by_text("invalid_auth", exact=False).first.is_visible()
    await page.screenshot(path=str(shots / "outbox.png"), full_page=True)

    await page.get_by_role("link", name="Candidates").click()
    await page.screenshot(path=str(shots / "candidates.png"), full_page=True)
    first = page.get_by_role("button", name=f"Dispatch {PUBLIC}#1")
    await first.click()
    assert await page.get_by_role("status").get_by_text(f"to {PUBLIC}#1").is_visible()
    assert fake_github.labels_of(PUBLIC, 1) == ["dispatch"]

    # A form whose CSRF token was taken out is refused, and nothing is labelled.
    await page.evaluate(
        "document.querySelectorAll('input[name=csrf]').forEach(input => input.remove())"
    )
    await page.get_by_role("button", name=f"Dispatch {PUBLIC}#2").click()
    assert await page.get_by_text("missing or invalid CSRF token").is_visible()
    assert fake_github.labels_of(PUBLIC, 2) == []


async def test_a_reader_sees_no_private_repository_and_no_dispatch_button(
    browser: Any, base_url: str, fake_github: FakeGitHub
) -> None:
    page = await signed_in_page(browser, base_url, fake_github, READER)
    assert await page.get_by_role("rowheader", name=PUBLIC).is_visible()
    assert await page.get_by_text(PRIVATE).count() == 0
    assert await page.get_by_role("link", name="Deliveries").count() == 0
    await page.get_by_role("link", name="Candidates").click()
    assert await page.get_by_text("8-bit Adam crashes on CPU").is_visible()
    assert await page.get_by_text("Secret kernel regression").count() == 0
    assert await page.get_by_role("button", name="Dispatch").count() == 0
    response = await page.goto(f"{base_url}/ui/issues/{PRIVATE}/1")
    assert response is not None and response.status == 404
