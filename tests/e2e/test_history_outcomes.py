"""The history and the audit log in a real browser, at 1366x900 and 390x844: one outcome
badge per run (issue parts 1 and 2), ten runs on the first screen (5), times with their
zone (6), no sideways scrolling on a phone (7), and axe finds nothing serious (11)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs import audit
from runs.models import AuditEntry, Run
from runs.summaries import summarise
from tests.e2e.conftest import check_page
from tests.factories import grant, make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
VIEWPORTS = ["desktop", "phone"]

# One run of each outcome, newest first, as (fields, the badge's words).
OUTCOMES = [
    ({"coalesce_status": "running", "run_counter": 9001}, "Running"),
    ({"coalesce_status": "", "run_counter": 9002}, "Queued"),
    ({"coalesce_status": "completed", "run_counter": 9003}, "Succeeded"),
    ({"coalesce_status": "failed", "run_counter": 9004}, "Failed"),
    ({"coalesce_status": "canceled", "run_counter": 9005}, "Cancelled"),
    ({"status": "rate_limited", "error_message": "Coalesce asked us to slow down."},
     "Couldn't start: rate limited"),
    ({"status": "unknown"}, "Outcome unknown"),
    ({"coalesce_status": "running", "run_counter": 9008}, "No longer followed"),
]


@pytest.fixture
def history(alice, carol, demo_profile) -> list[Run]:
    """The eight outcomes, then twelve older successes (a first page of twenty)."""
    now = timezone.now()
    runs = []
    for i, (fields, words) in enumerate(OUTCOMES):
        stopped = now if words == "No longer followed" else None
        runs.append(make_run(demo_profile, alice, created_at=now - timedelta(minutes=i),
                             stopped_following_at=stopped, job_id="5", **fields))
    failed = runs[3]
    failed.results = [
        {"node_id": "a", "name": "STG_ORDERS", "status": "completed"},
        {"node_id": "b", "name": "FCT_ORDERS", "status": "failed",
         "error": "SQL compilation error: invalid identifier 'AMOUNT'"},
        {"node_id": "c", "name": "FCT_REVENUE", "status": "failed", "error": "upstream"},
    ]
    summarise(failed)
    failed.save()
    for i in range(12):
        make_run(demo_profile, alice, created_at=now - timedelta(hours=2, minutes=i),
                 coalesce_status="completed", run_counter=8000 + i,
                 include_selector="+FCT_ORDERS minus { DIM_CUSTOMER }",
                 coalesce_started_at=now - timedelta(hours=2, minutes=i),
                 coalesce_ended_at=now - timedelta(hours=2, minutes=i - 4, seconds=-12))
    return runs


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_each_run_shows_one_outcome_in_words_colour_and_shape(new_page, log_in, history,
                                                              viewport):
    page = new_page(viewport)
    log_in(page, "carol")
    rows = page.locator("#run-rows tbody tr")
    expect(rows).to_have_count(20)
    for index, (_, words) in enumerate(OUTCOMES):
        badge = rows.nth(index).locator(".outcome")
        expect(badge).to_have_count(1)
        # A shape before the words: the outcome never rests on colour alone.
        expect(badge).to_have_text(re.compile(r"^\S \s*" + re.escape(words) + "$"))
        expect(badge.locator(".outcome-shape")).not_to_be_empty()
        # On a phone too, the outcome is on screen without scrolling right.
        box = badge.bounding_box()
        assert box["x"] + box["width"] <= page.viewport_size["width"]
    check_page(page)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_failed_run_says_why_and_its_node_can_be_searched(new_page, log_in, history,
                                                            viewport):
    page = new_page(viewport)
    log_in(page, "carol")
    failed_row = page.locator("#run-rows tbody tr").nth(3)
    expect(failed_row).to_contain_text("2 of 3 nodes failed: FCT_ORDERS, FCT_REVENUE. "
                                       "SQL compilation error: invalid identifier 'AMOUNT'")
    page.get_by_label("Search").fill("fct_revenue")
    page.get_by_label("Search").press("Enter")
    rows = page.locator("#run-rows tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_role("link").first).to_have_text(re.compile(r"^9004"))
    expect(page).to_have_url(re.compile(r"q=fct_revenue"))
    # A number finds the run by its runCounter.
    page.get_by_label("Search").fill("8003")
    page.get_by_label("Search").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("8003")
    check_page(page)


def test_the_first_screen_shows_ten_runs_and_the_charts_in_one_line(new_page, log_in,
                                                                    history):
    page = new_page("desktop")
    log_in(page, "carol")
    rows = page.locator("#run-rows tbody tr")
    expect(rows).to_have_count(20)
    tenth = rows.nth(9).bounding_box()
    assert tenth["y"] + tenth["height"] <= 900, "the tenth run is below the first screen"
    # The filters are one row: every control and the button side by side.
    parts = page.locator("#history-filters > .field, #history-filters > .filter-actions")
    expect(parts).to_have_count(8)  # seven filters and the buttons
    boxes = [parts.nth(i).bounding_box() for i in range(8)]
    # (They share one horizontal line: each starts above the point where any one ends.)
    assert max(b["y"] for b in boxes) < min(b["y"] + b["height"] for b in boxes), boxes
    # The charts are one line until opened; the line already says how it went.
    summary = page.locator(".history-charts-box > summary")
    expect(summary).to_contain_text(re.compile(r"20 runs · \d+% succeeded of \d+ finished · "
                                               r"2 still going"))
    expect(page.locator("#history-charts")).to_be_hidden()
    summary.click()
    expect(page.get_by_role("table", name=re.compile("Per environment"))).to_be_visible()
    check_page(page)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_times_have_their_date_and_zone_and_how_long_ago(new_page, log_in, history,
                                                         viewport):
    page = new_page(viewport)
    log_in(page, "carol")
    first = page.locator("#run-rows tbody tr").first
    expect(first.locator("time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$"))
    expect(first.locator(".ago")).to_have_text(re.compile(r"just now|min ago"))
    expect(page.locator("#run-rows tbody tr").nth(8)).to_contain_text("4 min 12 s")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_phone_reads_the_history_without_scrolling_sideways(new_page, log_in, history,
                                                              viewport):
    page = new_page(viewport)
    log_in(page, "carol")
    expect(page.locator("#run-rows tbody tr")).to_have_count(20)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"]
    page.locator(".history-charts-box > summary").click()
    expect(page.get_by_role("table", name=re.compile("Per environment"))).to_be_visible()
    check_page(page)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_audit_log_links_runs_and_reads_on_a_phone(new_page, log_in, history, carol,
                                                       demo_profile, viewport):
    grant(carol, "view_auditentry")
    failed = history[3]
    audit.record(AuditEntry.Action.RUN_STARTED, actor="alice", ip="192.0.2.7",
                 target=f"run {failed.pk}",
                 details={"profile": demo_profile.name, "job_id": "5", "force": False})
    audit.record(AuditEntry.Action.PROFILE_CHANGED, actor="admin",
                 target=f"profile {demo_profile.pk} {demo_profile.name}",
                 details={"fields": ["Allowed groups"],
                          "fingerprint": "SHA256:" + "x" * 44})
    page = new_page(viewport)
    log_in(page, "carol")
    page.goto("/audit/")
    entry = page.locator("table.audit tbody tr").filter(has_text="Run started")
    expect(entry.locator(".outcome")).to_have_text("✕ Failed")
    expect(entry.locator("time")).to_have_text(re.compile(r" UTC$"))
    check_page(page)
    entry.get_by_role("link", name=demo_profile.name).click()
    expect(page).to_have_url(re.compile(rf"environment={demo_profile.pk}"))
    page.go_back()
    page.get_by_role("link", name="Run 9004").click()
    expect(page).to_have_url(re.compile(rf"/runs/{failed.pk}/"))


def test_the_history_works_without_javascript(page_without_js, log_in, history):
    page = page_without_js
    log_in(page, "carol")
    expect(page.locator("#run-rows tbody tr")).to_have_count(20)
    page.get_by_label("Outcome").select_option(label="Failed")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#run-rows tbody tr")).to_have_count(1)
    page.locator(".history-charts-box > summary").click()
    page.get_by_role("link", name="Show the charts for these filters").click()
    expect(page.get_by_role("table", name=re.compile("Per environment"))).to_be_visible()
