"""The dashboard over HTTP: sign-in, access per repository, CSRF, dispatch, operators' pages.

The same flows in a real browser are in tests/test_dashboard_browser.py; these run
without one and check the details (headers, cookies, refusals).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.dashboard.auth import SessionSigner
from bot.dashboard.views import hourly_chart, prompt_diff
from bot.service import create_app
from bot.web.app import SERVICES
from tests.conftest import FAST_RETRIES
from tests.dashboard_env import MAINTAINER, READER, prepare, sign_in
from tests.dashboard_seed import PRIVATE, PUBLIC
from tests.fakegithub import FakeGitHub
from tests.service_fixtures import delivery_rows, settled


@pytest.fixture
async def ui(
    aiohttp_client: Any, fake_github: FakeGitHub, tmp_path: Path
) -> AsyncIterator[TestClient]:
    settings = prepare(fake_github, tmp_path)
    client: TestClient = await aiohttp_client(
        await create_app(settings, github_policy=FAST_RETRIES)
    )
    yield client


@pytest.fixture
def services_db_path(ui: TestClient) -> Path:
    return ui.app[SERVICES].settings.db


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


async def test_pages_need_sign_in_and_send_strict_headers(ui: TestClient) -> None:
    for path in ("/ui/", "/ui/candidates", "/ui/issues", "/ui/runs", "/ui/deliveries"):
        response = await ui.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/ui/login", path
    page = await ui.get("/ui/login")
    assert page.status == 200
    assert "Sign in with GitHub" in await page.text()
    csp = page.headers["Content-Security-Policy"]
    assert (
        "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    )
    assert page.headers["X-Frame-Options"] == "DENY"
    assert (await ui.get("/ui", allow_redirects=False)).headers["Location"] == "/ui/"


async def test_sign_in_sets_a_signed_httponly_cookie(
    ui: TestClient, fake_github: FakeGitHub
) -> None:
    await sign_in(ui, fake_github, MAINTAINER)
    [cookie] = [c for c in ui.session.cookie_jar if c.key == "ad_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/ui"
    assert not cookie["secure"]  # public_url is http here; https makes it Secure
    page = await (await ui.get("/ui/")).text()
    assert f"Signed in as <strong>{MAINTAINER}</strong>" in page
    assert PUBLIC in page and PRIVATE in page
    # The user token was used once for GET /user and is not kept anywhere.
    assert "gho_" not in cookie.value


async def test_a_callback_without_the_state_cookie_is_refused(
    ui: TestClient, fake_github: FakeGitHub
) -> None:
    response = await ui.get("/ui/auth/callback?code=abc&state=forged", allow_redirects=False)
    assert response.status == 403
    assert "Sign-in failed" in await response.text()
    assert not [c for c in ui.session.cookie_jar if c.key == "ad_session"]


async def test_a_tampered_session_cookie_counts_as_signed_out(ui: TestClient) -> None:
    _, token = SessionSigner("another secret").new_session(MAINTAINER)
    ui.session.cookie_jar.update_cookies({"ad_session": token})
    response = await ui.get("/ui/", allow_redirects=False)
    assert response.status == 303


async def test_a_reader_sees_only_public_repositories_and_no_dispatch_button(
    ui: TestClient, fake_github: FakeGitHub
) -> None:
    await sign_in(ui, fake_github, READER)
    overview = await (await ui.get("/ui/")).text()
    assert PUBLIC in overview and PRIVATE not in overview
    assert "Deliveries" not in overview  # not an operator
    candidates = await (await ui.get("/ui/candidates")).text()
    assert "8-bit Adam crashes on CPU" in candidates
    assert "Secret kernel regression" not in candidates
    assert ">Dispatch<" not in candidates
    private = await ui.get(f"/ui/issues/{PRIVATE}/1")
    assert private.status == 404
    assert (await ui.get(f"/ui/issues?repo={PRIVATE}")).status == 404
    assert (await ui.get("/ui/deliveries")).status == 403
    page = await (await ui.get("/ui/")).text()
    refused = await ui.post(
        "/ui/candidates/dispatch", data={"csrf": csrf_of(page), "repo": PUBLIC, "number": "1"}
    )
    assert refused.status == 403
    assert fake_github.labels_of(PUBLIC, 1) == []


async def test_dispatch_applies_the_label_and_runs_the_label_flow(
    ui: TestClient, fake_github: FakeGitHub, services_db_path: Path
) -> None:
    await sign_in(ui, fake_github, MAINTAINER)
    page = await (await ui.get("/ui/candidates")).text()
    assert page.index("8-bit Adam crashes on CPU") < page.index("LARS missing")
    response = await ui.post(
        "/ui/candidates/dispatch",
        data={"csrf": csrf_of(page), "repo": PUBLIC, "number": "1"},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    assert fake_github.labels_of(PUBLIC, 1) == ["dispatch"]
    [ours] = [r for r in delivery_rows(services_db_path) if r["id"].startswith("ui-")]
    assert (ours["event"], ours["action"], ours["subject"]) == ("issues", "labeled", f"{PUBLIC}#1")
    done = await settled(services_db_path, [ours["id"]])
    assert done[ours["id"]]["status"] == "done"
    followed = await (await ui.get(response.headers["Location"])).text()
    assert f"Applied the dispatch label to {PUBLIC}#1" in followed


async def test_forms_without_a_valid_csrf_token_are_refused(
    ui: TestClient, fake_github: FakeGitHub
) -> None:
    await sign_in(ui, fake_github, MAINTAINER)
    for data in ({}, {"csrf": "forged"}):
        response = await ui.post(
            "/ui/candidates/dispatch", data=data | {"repo": PUBLIC, "number": "1"}
        )
        assert response.status == 403
        assert "CSRF" in await response.text()
    assert fake_github.labels_of(PUBLIC, 1) == []
    assert (await ui.post("/ui/outbox/retry", data={"id": "2"})).status == 403


async def test_issue_page_shows_comment_prompt_versions_and_their_diff(
    ui: TestClient, fake_github: FakeGitHub
) -> None:
    await sign_in(ui, fake_github, MAINTAINER)
    listing = await (await ui.get(f"/ui/issues?repo={PUBLIC}&verdict=actionable")).text()
    assert "5 issues" in listing  # 1, 2, 3, 8 (dispatched) and 9 (has a PR)
    page = await (await ui.get(f"/ui/issues/{PUBLIC}/1")).text()
    assert "<strong>Actionable</strong>" not in page  # posted markdown is shown as text
    assert "**Actionable** (0.85): a traceback and a pointer." in page
    assert "Version 1" in page and "Version 2" in page
    assert '<span class="del">-First prompt.</span>' in page
    assert '<span class="add">+Second prompt.</span>' in page


async def test_operators_replay_deliveries_and_retry_the_outbox(
    ui: TestClient, fake_github: FakeGitHub
) -> None:
    await sign_in(ui, fake_github, MAINTAINER)
    dead = await (await ui.get("/ui/deliveries?status=dead")).text()
    assert "GitHub answered 502 five times" in dead
    replayed = await ui.post(
        "/ui/deliveries/replay", data={"csrf": csrf_of(dead), "id": "seed-0"}, allow_redirects=False
    )
    assert replayed.status == 303
    outbox = await (await ui.get("/ui/outbox?status=dead")).text()
    assert "invalid_auth" in outbox
    retried = await ui.post(
        "/ui/outbox/retry", data={"csrf": csrf_of(outbox), "id": "2"}, allow_redirects=False
    )
    assert retried.status == 303
    overview = await (await ui.get("/ui/")).text()
    assert "Deliveries per hour" in overview and "<svg" in overview
    # The permission checks of this test's requests reported the installation's limit.
    assert re.search(r"installation 1: \d+ of 5000 requests", overview)


def test_hourly_chart_scales_to_the_peak() -> None:
    chart = hourly_chart([0, 5, 10], now=7200 * 12, height=118, axis=18)
    assert [b.height for b in chart.bars] == [0.0, 50.0, 100.0]
    assert [b.y for b in chart.bars] == [100.0, 50.0, 0.0]
    assert chart.total == 15 and chart.peak == 10
    assert hourly_chart([0, 0], now=0).bars[0].height == 0.0


def test_prompt_diff_tags_lines() -> None:
    lines = prompt_diff("a\nb\n", "a\nc\n", old_name="v1", new_name="v2")
    assert [(line.kind, line.text) for line in lines] == [
        ("file", "--- v1"),
        ("file", "+++ v2"),
        ("hunk", "@@ -1,2 +1,2 @@"),
        ("same", " a"),
        ("del", "-b"),
        ("add", "+c"),
    ]


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# (foreground, background, least ratio): WCAG AA, 4.5:1 for text, 3:1 for the focus ring.
PAIRS = [
    ("text", "bg", 4.5),
    ("text", "panel", 4.5),
    ("muted", "bg", 4.5),
    ("muted", "panel", 4.5),
    ("link", "bg", 4.5),
    ("link", "panel", 4.5),
    ("#ffffff", "link", 4.5),  # button text
    ("good", "bg", 4.5),
    ("good", "add-bg", 4.5),
    ("bad", "bg", 4.5),
    ("bad", "del-bg", 4.5),
    ("focus", "bg", 3.0),
]


@pytest.mark.parametrize("foreground, background, least", PAIRS)
def test_stylesheet_colours_keep_aa_contrast(
    foreground: str, background: str, least: float
) -> None:
    css = (Path(__file__).resolve().parents[1] / "bot/dashboard/static/style.css").read_text()
    palette = dict(re.findall(r"--([a-z-]+): (#[0-9a-f]{6});", css))

    def colour(name: str) -> str:
        return name if name.startswith("#") else palette[name]

    assert contrast(colour(foreground), colour(background)) >= least
