"""The browser-test harness: the app served live on a loopback port with the test database, driven by
Playwright in Debian's chromium (never a downloaded browser), a screenshot of each page it checks, and an
axe-core accessibility check of each page."""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from network.app import create_app
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
#: axe-core impacts that fail a test.
BLOCKING = {"serious", "critical"}


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    return path


@pytest.fixture
def live_app(committed_db, database_url: str, tmp_path: Path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The app on a committing database, served by werkzeug in a thread on 127.0.0.1; `.url` is its base."""
    app = create_app(make_settings(database_url, mail_outbox=str(tmp_path / "outbox")), database=committed_db)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.url = f"http://127.0.0.1:{server.server_port}"  # type: ignore[attr-defined]
    # Links in mails point at the live server.
    app.extensions["network.settings"] = dataclasses.replace(
        app.extensions["network.settings"],
        public_base_url=app.url,  # type: ignore[attr-defined]
    )
    thread = threading.Thread(target=server.serve_forever, name="live-app", daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright."""
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Return a function making a page in a new browser context (its own cookies: one person each)."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context()
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def check_page(page: Any, name: str) -> None:
    """Screenshot the page to test-artifacts/screenshots/<name>.png and fail on serious axe violations."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    # Evaluated through the DevTools protocol, so the page's CSP (no inline script) does not block it.
    page.evaluate(AXE.read_text() + "\n;0")
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))"""
    )
    serious = [v for v in violations if v["impact"] in BLOCKING]
    assert not serious, f"{name}: accessibility violations {serious}"


def sign_in(page: Any, base: str, email: str, password: str) -> None:
    """Sign in through the sign-in page, as a person does: by the fields' labels and the button's name."""
    page.goto(f"{base}/account/sign-in")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_up(page: Any, base: str, *, name: str, email: str, password: str, traffic_sources: str) -> None:
    """Apply as a new partner through the sign-up page (the website is the name's, in .example)."""
    page.goto(f"{base}/account/sign-up")
    page.get_by_label("Your name or company").fill(name)
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Website").fill(f"https://{name.lower().replace(' ', '')}.example")
    page.get_by_label("Traffic sources").fill(traffic_sources)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat the password").fill(password)
    page.get_by_role("button", name="Apply").click()
