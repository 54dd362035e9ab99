"""The run history in a real browser: filter with htmx (the URL follows), open a run."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.factories import make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

def test_it_filters_the_history_and_opens_a_run(page: Page, log_in, alice, demo_profile,
                                                broken_profile):
    make_run(demo_profile, alice, status="started", run_counter=101, job_id="5",
         coalesce_status="completed")
    broken = make_run(broken_profile, alice, status="unreachable",
                  error_message="Coalesce is unavailable (HTTP 500). Try again later.")
    log_in(page)

    rows = page.locator("#run-rows tbody tr")
    expect(rows).to_have_count(2)
    page.evaluate("window.notReloaded = true")
    page.wait_for_function("() => window.htmx !== undefined")  # htmx bound the filters
    page.get_by_label("Environment", exact=True).select_option(label=broken_profile.name)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Coalesce is unavailable (HTTP 500)")
    # htmx swapped the table in place and pushed the filter into the URL to share.
    assert page.evaluate("window.notReloaded === true")
    expect(page).to_have_url(re.compile(rf"environment={broken_profile.pk}"))

    rows.first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=f"Run {broken.number} on {broken_profile.name}")
           ).to_be_visible()
    expect(page.locator(".outcome-line")).to_have_text("! Couldn't start: unreachable")
