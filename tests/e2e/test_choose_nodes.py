"""Choosing nodes in a real browser: the picker, the live preview, a run whose preview is
checked against what the simulator ran, and the run form with errors on both viewports."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from runs import catalogue
from runs.models import Run
from tests.e2e.conftest import check_page
from tests.e2e.support import (
    FINISH_TIMEOUT_MS,
    simulator_options,  # noqa: F401 - a fixture
)
from tests.factories import sim_profile

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = "/tmp/e2e-choose-{}.png"


@pytest.fixture
def nodes_profile(simulator, analysts):
    profile = sim_profile(simulator.state.base_url, "shop", name="Shop (simulated)",
                          groups=[analysts])
    catalogue.refresh(profile)  # what the worker does when the form asks
    return profile


def choose_shop(page: Page) -> None:
    page.goto("/runs/new/")
    page.get_by_label("Environment", exact=True).select_option(label="Shop (simulated)")
    # The form comes back for that environment: wait, so typing goes into the new form.
    expect(page.locator("#catalogue-status")).to_contain_text("Node list refreshed")


def pick(page: Page, query: str, name: str) -> None:
    search = page.get_by_label("Search nodes by name, location or type")
    search.clear()
    search.press_sequentially(query)  # typed, as a person would
    page.get_by_role("button", name=re.compile(f"^Include {name} in ")).click()
    # The form comes back with the term added: wait, so the next search types into it.
    expect(page.get_by_label("Include nodes")).to_have_value(re.compile(name))


def test_pick_two_nodes_preview_them_and_check_the_run(new_page, log_in, alice, nodes_profile,
                                                       sweeper, simulator):  # noqa: F811
    page = new_page()
    log_in(page)
    choose_shop(page)
    expect(page.get_by_text("Nothing selected: refreshes all 300 nodes")).to_be_visible()

    pick(page, "fct_rev", "FCT_REVENUE")
    pick(page, "dim_cust", "DIM_CUSTOMER")
    include = page.get_by_label("Include nodes")
    expect(include).to_have_value("{ location: MART name: FCT_REVENUE } OR "
                                  "{ location: MART name: DIM_CUSTOMER }")
    expect(page.locator(".preview-count")).to_have_text("Matches 2 nodes")
    page.screenshot(path=SHOTS.format("picked"), full_page=True)

    include.fill("+{ location: MART name: FCT_REVENUE } OR "
                 "{ location: MART name: DIM_CUSTOMER }")
    expect(page.locator(".preview-count")).to_have_text("Matches 7 nodes")
    page.get_by_role("button", name="Start run").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get()
    assert len(run.preview.node_ids) == 7
    expect(page.locator("#run-live .outcome-line")).to_have_text(
        "✓ Succeeded", timeout=FINISH_TIMEOUT_MS)
    page.reload()
    expect(page.get_by_text("Preview matched: 7 nodes")).to_be_visible()
    page.screenshot(path=SHOTS.format("run"), full_page=True)


def test_a_whole_environment_run_matches_its_preview(new_page, log_in, alice, nodes_profile,
                                                     sweeper, simulator):  # noqa: F811
    page = new_page()
    log_in(page)
    choose_shop(page)
    expect(page.get_by_text("Nothing selected: refreshes all 300 nodes")).to_be_visible()
    page.get_by_label("Refresh the entire environment").check()
    page.get_by_role("button", name="Start run").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator("#run-live .outcome-line")).to_have_text(
        "✓ Succeeded", timeout=FINISH_TIMEOUT_MS)
    page.reload()
    # Coalesce (here the simulator) refreshed every node the preview counted.
    expect(page.get_by_text("Preview matched: 300 nodes")).to_be_visible()
    expect(page.locator("table.nodes tbody tr")).to_have_count(300)


def test_a_job_s_run_is_previewed_after_its_check_and_matches(new_page, log_in, alice,
                                                              nodes_profile, sweeper,
                                                              simulator):  # noqa: F811
    page = new_page()
    log_in(page)
    choose_shop(page)
    page.get_by_label("Job ID").fill("101")

    # The job check's answer also brings the preview up to date, in place.
    expect(page.locator("#job-check")).to_contain_text("Daily marts")
    expect(page.locator(".preview-count")).to_contain_text("Matches 27 nodes")
    expect(page.locator("#selector-preview")).to_contain_text("job 101's selectors")
    page.get_by_role("button", name="Start run").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator("#run-live .outcome-line")).to_have_text(
        "✓ Succeeded", timeout=FINISH_TIMEOUT_MS)
    page.reload()
    expect(page.get_by_text("Preview matched: 27 nodes")).to_be_visible()


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_the_run_form_with_errors_is_accessible_and_fits(new_page, log_in, alice, nodes_profile,
                                                         viewport):
    page = new_page(viewport)
    log_in(page)
    choose_shop(page)
    page.get_by_label("Job ID").fill("nightly")
    page.get_by_label("Parallelism").fill("2000")
    page.get_by_label("Parameter value").fill("orphan")
    page.locator("#run-form").evaluate("form => { form.noValidate = true; }")
    page.get_by_role("button", name="Start run").click()

    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    for text in ("Job ID: A job ID is a number", "Parallelism: Parallelism must be",
                 "Parameter row 1: Give this parameter a name."):
        expect(summary.get_by_role("link", name=re.compile(re.escape(text)))).to_be_visible()
    expect(page.locator("#param-row-0")).to_contain_text("Give this parameter a name.")
    page.screenshot(path=SHOTS.format(f"errors-{viewport}"), full_page=True)
    check_page(page)


def test_a_warned_selector_needs_start_anyway(new_page, log_in, alice, nodes_profile, simulator):
    page = new_page("phone")
    log_in(page)
    choose_shop(page)
    page.get_by_label("Include nodes").fill("{ name: FCT_ORDERS || name: FCT_REVENUE }")
    page.get_by_role("button", name="Start run").click()

    expect(page.get_by_role("button", name="Start anyway")).to_be_visible()
    assert "POST /scheduler/startRun" not in simulator.state.calls_snapshot()
    check_page(page)
    page.get_by_role("button", name="Start anyway").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))


def test_the_picker_works_without_javascript(page_without_js, log_in, alice, nodes_profile):
    page = page_without_js
    log_in(page)
    page.goto(f"/runs/new/?environment={nodes_profile.pk}")
    page.get_by_label("Search nodes by name, location or type").fill("STG_ORDERS")
    page.get_by_role("button", name="Search nodes").click()
    page.get_by_role("button", name="Exclude STG_ORDERS in STAGING").click()

    expect(page.get_by_label("Exclude nodes")).to_have_value(
        "{ location: STAGING name: STG_ORDERS }")
    expect(page.locator(".preview-count")).to_have_text("Matches 299 nodes")


def test_the_form_stays_while_the_node_list_is_fetched(page: Page, log_in, alice, simulator,
                                                       analysts):
    # No worker runs here: the refresh the form asks for stays queued, so the node-list
    # line keeps polling for news. Its answer replaces that line, never the form.
    sim_profile(simulator.state.base_url, "fresh", name="Fresh (no node list yet)",
                groups=[analysts])
    log_in(page)
    page.goto("/runs/new/")
    page.get_by_label("Environment", exact=True).select_option(label="Fresh (no node list yet)")
    status = page.locator("#catalogue-status")
    expect(status).to_contain_text("No node list yet")
    page.wait_for_timeout(4_500)  # two polls of the node-list line
    expect(status).to_have_count(1)
    expect(page.get_by_role("button", name="Start run")).to_be_visible()
    expect(page.get_by_label("Parallelism")).to_be_visible()
