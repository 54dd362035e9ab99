"""Fixtures for the end-to-end tests: a real Chromium (Debian's, driven by Playwright's sync
API), pytest-django's live_server and the Coalesce simulator over real HTTP.

Chromium comes from the system (`apt-get install chromium`), never from `playwright install`,
which cannot download browsers here. Without it the browser tests are skipped, unless
REQUIRE_BROWSER_TESTS=true (CI sets it), where a missing browser is an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth.models import Group
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from coalesce_simulator import SimulatorServer
from runs.models import EnvironmentProfile
from tests.e2e.support import sweeper  # noqa: F401 (a fixture for every browser test)
from tests.factories import sim_profile

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps reaching out to its vendor's services, which
# a test has no business waiting on.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIM_TOKEN = "sim-token"  # the `simulator` fixture's (tests/conftest.py)
# Short, so a missing element fails the test in seconds rather than after 30.
TIMEOUT_MS = 5_000


def _browser_tests_required() -> bool:
    return os.environ.get("REQUIRE_BROWSER_TESTS", "").strip().lower() in ("true", "1", "yes")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last, after pytest-django has ordered the rest.

    While Playwright runs, the main thread looks as if an asyncio loop were running in it
    (hence DJANGO_ALLOW_ASYNC_UNSAFE below). Running these tests last means the session-scoped
    browser is stopped before no other test, so none runs beside that loop.
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        message = (
            f"{CHROMIUM} is missing: install it with `apt-get install chromium` "
            "(`playwright install` cannot download browsers on this machine)."
        )
        if _browser_tests_required():
            pytest.fail(f"REQUIRE_BROWSER_TESTS=true but {message}", pytrace=False)
        pytest.skip(message)
    # Playwright's sync API keeps an event loop "running" in this thread, so Django would
    # refuse ORM calls from the test with SynchronousOnlyOperation. Django's docs advise
    # this variable for Playwright; it is set only while Playwright runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            yield p
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


# The two screens every page must work on: a laptop and a phone.
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
# Reports every Content-Security-Policy violation on every page a test visits.
# axe-core (check_page) adds <style> elements from a script the test evaluates, which has no
# source file; those are the test tool's, not the site's, and are not reported.
_LISTEN_FOR_CSP = """document.addEventListener("securitypolicyviolation", (event) => {
  if (window.__axeInjected && !event.sourceFile) return;
  window.reportCspViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile || document.location.pathname}:${event.lineNumber}`);
});"""


def _new_context(browser: Browser, base_url: str, violations: list[str],
                 **options) -> BrowserContext:
    context = browser.new_context(base_url=base_url, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.expose_binding("reportCspViolation", lambda source, text: violations.append(text))
    context.add_init_script(_LISTEN_FOR_CSP)
    return context


@pytest.fixture
def csp_violations() -> Iterator[list[str]]:
    """What the pages of this test's contexts reported; any violation fails the test."""
    violations: list[str] = []
    yield violations
    assert violations == [], f"Content-Security-Policy violations: {violations}"


@pytest.fixture
def new_page(browser: Browser, live_server, csp_violations) -> Iterator[Callable[..., Page]]:
    """`new_page(viewport="phone")`: a fresh page in its own context (no cookies shared)."""
    contexts: list[BrowserContext] = []

    def new_page(viewport: str = "desktop", **options) -> Page:
        context = _new_context(browser, live_server.url, csp_violations,
                               viewport=VIEWPORTS[viewport], **options)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page) -> Page:
    """A fresh desktop-sized page in its own context (no cookies shared between tests)."""
    return new_page()


def check_page(page: Page) -> None:
    """What every page owes every visitor: no serious or critical accessibility violation
    (axe-core), and nothing that scrolls sideways at the page's width."""
    page.evaluate("window.__axeInjected = true")
    results = Axe().run(page)
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:3])
        for v in results.response["violations"] if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"axe on {page.url}: " + "; ".join(serious)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], (
        f"{page.url} is {width} px wide at a {page.viewport_size['width']} px viewport")


@pytest.fixture
def log_in() -> Callable[..., None]:
    """`log_in(page, username="alice")`: log in through the login page, with the password the
    people fixtures in tests/conftest.py give everyone ("<username>-password")."""

    def log_in(page: Page, username: str = "alice") -> None:
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(f"{username}-password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name=f"Log out {username}")).to_be_visible()

    return log_in


@pytest.fixture
def page_without_js(new_page) -> Page:
    return new_page(java_script_enabled=False)


@pytest.fixture
def demo_profile(simulator: SimulatorServer, analysts: Group) -> EnvironmentProfile:
    """A healthy simulated environment whose defaults differ from the form's (16, no job)."""
    return sim_profile(simulator.state.base_url, "demo", name="Demo (simulated Coalesce)",
                       default_job_id="5", default_parallelism=8, groups=[analysts])


@pytest.fixture
def broken_profile(simulator: SimulatorServer, analysts: Group) -> EnvironmentProfile:
    """An environment the simulator answers with an HTML 500 ("fail-http500")."""
    return sim_profile(simulator.state.base_url, "fail-http500", name="Broken environment",
                       default_parallelism=4, groups=[analysts])
