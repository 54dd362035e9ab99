"""Following a run to its end in a real browser, with a sweeper running beside the server.

The run page polls its live fragment every 3 s; a background thread sweeps every 0.5 s
against a simulator whose runs take 3 s. What only a browser shows: the status changes in
place (no page load), polling stops at the end, and a failed run's rerun completes too.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from runs.models import EnvironmentProfile, Run
from runs.service import RunRequest, start_run
from tests.e2e.support import FINISH_TIMEOUT_MS, simulator_options  # noqa: F401 (a fixture)
from tests.factories import sim_profile

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def failing_profile(simulator, analysts) -> EnvironmentProfile:
    """An environment whose runs fail two nodes (the simulator's "-fails" hint)."""
    return sim_profile(simulator.state.base_url, "demo-fails",
                       name="Failing (simulated Coalesce)", default_job_id="5",
                       groups=[analysts])


def start(profile: EnvironmentProfile, user) -> Run:
    run, created = start_run(RunRequest(profile=profile, job_id="5", parallelism=8),
                             user=user, client_ip=None, submit_token=uuid.uuid4())
    assert created and run.status == Run.Status.STARTED, run.error_message
    return run


def start_and_open(page: Page, log_in, sweeper, profile: EnvironmentProfile, user) -> Run:
    """Start a run (between two sweeps), log in and open its page, marked."""
    with sweeper.paused():
        run = start(profile, user)
    log_in(page)
    open_and_mark(page, run)
    return run


def open_and_mark(page: Page, run: Run) -> None:
    """Open the run page and mark the window: a page load would drop the marker."""
    page.goto(run.get_absolute_url())
    page.evaluate("window.__marker = 1")


OUTCOMES = {"completed": "Succeeded", "failed": "Failed", "canceled": "Cancelled"}


def expect_status_in_place(page: Page, status: str) -> None:
    expect(page.locator("#run-live .outcome-line")).to_have_text(
        re.compile(rf"{OUTCOMES[status]}$"), timeout=FINISH_TIMEOUT_MS)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    # Polling stopped with the 286 answer: no further request for the fragment.
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url)
            if "/status/" in request.url else None)
    page.wait_for_timeout(2_500)
    assert polls == [], "the page kept polling a finished run"


def test_a_run_moves_to_completed_without_a_reload(page: Page, log_in, alice, demo_profile,
                                                   sweeper):
    start_and_open(page, log_in, sweeper, demo_profile, alice)
    expect(page.locator("#run-live")).to_have_attribute("hx-trigger", "every 2s")

    expect_status_in_place(page, "completed")
    rows = page.locator("table.nodes tbody tr")
    # Job 5 has no selectors: every node of the environment, with the last status.
    expect(rows).to_have_count(300)
    expect(page.locator("table.nodes tr.node-failed")).to_have_count(0)
    expect(page.get_by_role("link", name="Rerun failed nodes")).to_have_count(0)


def test_a_failed_run_is_rerun_and_completes(page: Page, log_in, alice, failing_profile,
                                             sweeper):
    failed = start_and_open(page, log_in, sweeper, failing_profile, alice)

    expect_status_in_place(page, "failed")
    rows = page.locator("table.nodes tbody tr")
    expect(rows).to_have_count(300)
    # The failed nodes come first, with their errors.
    expect(rows.nth(0).locator("th")).to_have_text("FCT_ORDERS")
    expect(rows.nth(1).locator("th")).to_have_text("FCT_REVENUE")
    expect(rows.nth(0)).to_have_class("node-failed")
    expect(rows.nth(1)).to_have_class("node-failed")
    expect(rows.nth(0)).to_contain_text("invalid identifier 'AMOUNT'")
    expect(rows.nth(2)).not_to_have_class("node-failed")

    page.get_by_role("link", name="Rerun failed nodes").click()
    expect(page.get_by_role("heading", name=f"Rerun the failed nodes of run {failed.number}")
           ).to_be_visible()
    page.get_by_role("button", name="Rerun failed nodes").click()

    expect(page.get_by_text(f"Rerun of run {failed.number}")).to_be_visible()
    rerun = Run.objects.get(rerun_of=failed)
    expect(page).to_have_url(re.compile(rf"{rerun.get_absolute_url()}$"))
    expect(page.get_by_role("link", name=f"run {failed.number}", exact=True)).to_have_attribute(
        "href", failed.get_absolute_url())
    page.evaluate("window.__marker = 1")
    expect_status_in_place(page, "completed")
    # The rerun ran only the two nodes that had failed, and both succeeded this time.
    expect(rows).to_have_count(2)
    expect(page.locator("table.nodes tr.node-failed")).to_have_count(0)

    page.get_by_role("link", name=f"run {failed.number}", exact=True).click()
    expect(page.get_by_text(f"Rerun as run {rerun.number}:")).to_contain_text("Succeeded")
    # The history says why the original failed, out of every node it ran.
    page.goto("/")
    failed_row = page.locator("#run-rows tbody tr").filter(
        has=page.get_by_role("link", name=re.compile(rf"^{failed.number} ?, open the run$")))
    expect(failed_row).to_contain_text("2 of 300 nodes failed: FCT_ORDERS, FCT_REVENUE. "
                                       "SQL compilation error: invalid identifier 'AMOUNT'")
