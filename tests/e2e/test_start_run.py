"""Starting a refresh run in a real browser, against the live server and the simulator.

The unit tests cover the views one request at a time; these check what only a browser
shows: htmx swapping the form in place, the client-side redirect after a start, and the
same page working with JavaScript turned off.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from runs.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = "/tmp/e2e-run-page.png"
INCLUDE = "{ location: STAGING name: STG_* }"
JOB_CHECK = "GET /api/v1/environments/{id}/jobs/{jobID}"


def starts_sent(simulator) -> int:
    """How many runs were sent to Coalesce, after checking nothing else was sent but the
    look-up of the profile's default job, which the form makes once it shows it."""
    calls = dict(simulator.state.calls_snapshot())
    assert calls.pop(JOB_CHECK, 1) == 1
    starts = calls.pop("POST /scheduler/startRun", 0)
    assert calls == {}
    return starts


def open_run_form(page: Page, environment: str | None = None, *, javascript: bool = True) -> None:
    """Open the form from the menu and, if given, choose the `environment` (by its name)."""
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Start a refresh run").click()
    expect(page.get_by_role("heading", name="Start a refresh run")).to_be_visible()
    # htmx binds the environment select once its script has run: choosing before that
    # would change nothing (seen on a loaded machine).
    if javascript:
        page.wait_for_function("() => window.htmx !== undefined")
    if environment:
        page.get_by_label("Environment", exact=True).select_option(label=environment)


def test_it_starts_a_run_on_the_simulator(page: Page, log_in, alice, demo_profile, simulator):
    log_in(page)
    open_run_form(page)
    expect(page.get_by_label("Job ID")).to_have_value("")
    expect(page.get_by_label("Parallelism")).to_have_value("16")

    # A marker on window survives an htmx swap but not a page load.
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Environment", exact=True).select_option(label="Demo (simulated Coalesce)")
    expect(page.get_by_label("Job ID")).to_have_value("5")
    expect(page.get_by_label("Parallelism")).to_have_value("8")
    assert page.evaluate("window.notReloaded === true")

    page.get_by_label("Include nodes").fill(INCLUDE)
    names = page.get_by_label("Parameter name")
    expect(names).to_have_count(1)
    page.get_by_role("button", name="Add parameter").click()
    expect(names).to_have_count(2)
    names.last.fill("target_date")
    page.get_by_label("Parameter value").last.fill("2026-11-01")
    # The swap that added the row kept what was typed before it.
    expect(page.get_by_label("Include nodes")).to_have_value(INCLUDE)
    page.get_by_role("button", name="Start run").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    [sim_run] = simulator.state.runs.values()
    assert (sim_run.environment_id, sim_run.job_id, sim_run.parallelism) == ("demo", "5", 8)
    assert sim_run.include_nodes_selector == INCLUDE
    assert sim_run.parameters == {"target_date": "2026-11-01"}
    counter = sim_run.run_counter
    expect(page.locator(".run-counter")).to_have_text(str(counter))
    link = page.get_by_role("link", name=f"Open run {counter} in Coalesce")
    expect(link).to_have_attribute("href", f"{simulator.state.base_url}/runs/{counter}")
    expect(page.locator(".outcome-line")).to_have_text("… Queued")
    assert starts_sent(simulator) == 1
    page.screenshot(path=SCREENSHOT, full_page=True)


def test_it_explains_a_coalesce_failure_in_plain_words(page: Page, log_in, alice,
                                                        broken_profile, simulator):
    log_in(page)
    open_run_form(page, "Broken environment")
    expect(page.get_by_label("Parallelism")).to_have_value("4")
    page.get_by_label("Refresh the entire environment").check()
    page.get_by_role("button", name="Start run").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    error = page.get_by_role("alert")
    expect(error).to_contain_text("Coalesce is unavailable (HTTP 500)")
    expect(error).to_contain_text("HTTP status 500")
    expect(page.locator(".outcome-line")).to_have_text("! Couldn't start: unreachable")
    expect(page.locator(".run-counter")).to_have_count(0)
    # Never a traceback or the proxy's HTML in the message itself.
    expect(error).not_to_contain_text("Traceback")
    expect(error).not_to_contain_text("<html>")
    assert starts_sent(simulator) == 1


def test_it_shows_a_validation_error_beside_the_field(page: Page, log_in, alice, demo_profile,
                                                      simulator):
    log_in(page)
    open_run_form(page, "Demo (simulated Coalesce)")
    expect(page.get_by_label("Parallelism")).to_have_value("8")
    page.get_by_label("Include nodes").fill(INCLUDE)
    page.get_by_label("Parallelism").fill("0")

    # The browser refuses first (the input has min="1"), so nothing is sent.
    page.get_by_role("button", name="Start run").click()
    assert page.get_by_label("Parallelism").evaluate("el => !el.validity.valid")
    # Then without the browser's check, as an older browser or a hand-made POST would be.
    page.locator("#run-form").evaluate("form => { form.noValidate = true; }")
    page.get_by_role("button", name="Start run").click()

    parallelism = page.get_by_label("Parallelism")
    message = "Parallelism must be a whole number from 1 to 1024."
    # Tied to the input for screen readers (aria-describedby) and shown right under it.
    expect(parallelism).to_have_accessible_description(re.compile(re.escape(message)))
    error = page.locator(".field .errorlist").get_by_text(message)
    expect(error).to_be_visible()
    # Focus moved to the summary, which links to the field.
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link", name=f"Parallelism: {message}")).to_have_attribute(
        "href", "#id_parallelism")
    field_box, error_box = parallelism.bounding_box(), error.bounding_box()
    assert 0 <= error_box["y"] - (field_box["y"] + field_box["height"]) < 40
    expect(page.get_by_label("Include nodes")).to_have_value(INCLUDE)
    expect(page.get_by_label("Environment", exact=True)).to_have_value(str(demo_profile.pk))
    assert re.search(r"/runs/new/$", page.url)
    assert starts_sent(simulator) == 0
    assert not Run.objects.exists()


def test_it_starts_a_run_without_javascript(page_without_js: Page, log_in, alice, demo_profile,
                                            simulator):
    page = page_without_js
    log_in(page)
    open_run_form(page, "Demo (simulated Coalesce)", javascript=False)
    # No htmx: nothing changes until the defaults button posts the form back.
    expect(page.get_by_label("Job ID")).to_have_value("")
    page.get_by_role("button", name="Use this environment's defaults").click()
    expect(page).to_have_url(re.compile(r"/runs/new/$"))  # no state or token in the URL
    expect(page.get_by_label("Job ID")).to_have_value("5")
    expect(page.get_by_label("Parallelism")).to_have_value("8")

    page.get_by_label("Parameter name").fill("target_date")
    page.get_by_label("Parameter value").fill("2026-11-01")
    page.get_by_role("button", name="Start run").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    [sim_run] = simulator.state.runs.values()
    assert (sim_run.environment_id, sim_run.job_id, sim_run.parallelism) == ("demo", "5", 8)
    assert sim_run.parameters == {"target_date": "2026-11-01"}
    expect(page.locator(".run-counter")).to_have_text(str(sim_run.run_counter))
    expect(page.get_by_role("link", name=f"Open run {sim_run.run_counter} in Coalesce")
           ).to_be_visible()
