"""403 and 404 in a real browser, at 1366x900 and 390x844: the site's layout and
navigation (no "Start a refresh run" for who may start nothing), axe-clean, no sideways
scrolling."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import check_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_a_403_and_a_404_keep_the_site_around_them(new_page, log_in, bob, viewport):
    page: Page = new_page(viewport)
    log_in(page, "bob")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Run history")).to_be_visible()
    expect(nav.get_by_role("link", name="Start a refresh run")).to_have_count(0)

    response = page.goto("/runs/1/cancel/")  # bob may not cancel runs
    assert response.status == 403
    expect(page.get_by_role("heading", name="You can't do that here")).to_be_visible()
    expect(nav.get_by_role("link", name="Run history")).to_be_visible()
    check_page(page)

    response = page.goto("/no-such-page/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Nothing here")).to_be_visible()
    expect(page.get_by_role("button", name="Log out bob")).to_be_visible()
    check_page(page)
