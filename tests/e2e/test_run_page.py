"""The run page in a real browser, at 1366x900 and 390x844: one outcome headline, live
progress that fills in without a reload, an elapsed time that ticks, "Run again", a
live region that stays in place and an alert that is not re-announced, axe-clean and no
sideways scrolling on a live run and on a failed run."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone
from playwright.sync_api import Page, expect

from runs.models import Run
from tests.e2e.conftest import check_page
from tests.factories import make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = ["desktop", "phone"]


def node(name: str, status: str, *, error: str = "", running: bool = False) -> dict:
    stage = {"name": f"Insert {name}", "status": status, "success": status == "completed",
             "is_running": running, "has_error": bool(error), "error_string": error}
    return {"node_id": name.lower(), "name": name, "status": status, "stages": [stage],
            "error": error, "failed_sql": "select amount from x" if error else "",
            "duration_seconds": 12.5 if not running else None}


FIVE_NODES = [node("STG_NATION", "completed"), node("STG_REGION", "completed"),
              node("DIM_CUSTOMER", "completed"), node("FCT_ORDERS", "running", running=True),
              node("FCT_REVENUE", "waitingToRun")]


class Turns:
    """Writes from the test take turns with the live server's requests: on SQLite's
    in-memory test database both share one connection."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        main = connections[DEFAULT_DB_ALIAS]
        self.shared = main.vendor == "sqlite" and main.is_in_memory_db()

    def _started(self, **kwargs) -> None:
        self.lock.acquire()

    def _finished(self, **kwargs) -> None:
        self.lock.release()

    def __enter__(self):
        if self.shared:
            request_started.connect(self._started, dispatch_uid="e2e-turns")
            request_finished.connect(self._finished, dispatch_uid="e2e-turns")
        return self

    def __exit__(self, *exc) -> None:
        request_started.disconnect(dispatch_uid="e2e-turns")
        request_finished.disconnect(dispatch_uid="e2e-turns")


@pytest.fixture
def turns(live_server) -> Iterator[Turns]:
    with Turns() as turns:
        yield turns


def shoot(page: Page, name: str) -> None:
    """Screenshots to look at while working on the page (never committed)."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def live_run(profile, user) -> Run:
    now = timezone.now()
    return make_run(profile, user, run_counter=287756343, coalesce_status="running",
                    coalesce_started_at=now - timedelta(seconds=65),
                    run_link=f"{profile.base_url}/runs/287756343", answered_at=now,
                    results=FIVE_NODES[:4], results_fetched_at=now)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_live_run_shows_its_progress_and_fills_in_without_a_reload(
        new_page, log_in, alice, demo_profile, turns, viewport):
    run = live_run(demo_profile, alice)
    run.log("started", "Coalesce accepted the run: runCounter 287756343.")
    page = new_page(viewport)
    log_in(page)
    page.goto(run.get_absolute_url())
    page.evaluate("""() => {
        window.__marker = 1;
        document.getElementById("run-live").__kept = 1;
        window.__announced = [];
        const region = document.getElementById("run-announce");
        region.__kept = 1;
        new MutationObserver(() => window.__announced.push(region.textContent))
            .observe(region, {childList: true, characterData: true, subtree: true});
    }""")

    headline = page.locator("#run-live .outcome-line")
    expect(headline).to_have_text("▶ Running")
    expect(headline).to_be_in_viewport()
    expect(page.locator(".progress")).to_have_text("3 of 4 nodes done · 1 running · 0 failed")
    running = page.locator("table.nodes tr", has_text="FCT_ORDERS")
    expect(running.locator(".node-status")).to_have_text("▶ running")
    expect(page.locator("table.nodes tr.node-failed")).to_have_count(0)
    elapsed = page.locator("[data-elapsed-since]")
    first = elapsed.text_content()
    expect(elapsed).not_to_have_text(first, timeout=2_500)  # it ticks
    expect(page.get_by_role("link", name="Run again")).to_have_attribute(
        "href", f"/runs/new/?from_run={run.pk}")
    check_page(page)
    shoot(page, f"live-{viewport}")

    page.wait_for_timeout(4_500)  # two polls of an unchanged run: nothing announced
    assert page.evaluate("window.__announced") == []

    with turns.lock:
        Run.objects.filter(pk=run.pk).update(
            results=[*FIVE_NODES[:3], node("FCT_ORDERS", "completed"),
                     node("FCT_REVENUE", "running", running=True)],
            results_fetched_at=timezone.now())
        run.log("results", "Node results refreshed.")

    expect(page.locator(".progress")).to_have_text("4 of 5 nodes done · 1 running · 0 failed")
    expect(page.locator("table.nodes tbody tr")).to_have_count(5)
    expect(page.get_by_role("status")).to_have_text(
        "Running · 4 of 5 nodes done · 1 running · 0 failed")
    # The same elements, their content updated: no reload, no replaced live region.
    assert page.evaluate("window.__marker") == 1
    assert page.evaluate("document.getElementById('run-live').__kept") == 1
    assert page.evaluate("document.getElementById('run-announce').__kept") == 1
    check_page(page)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_failed_run_leads_with_failed_and_stacks_its_nodes_on_a_phone(
        new_page, log_in, alice, demo_profile, viewport):
    now = timezone.now()
    run = make_run(demo_profile, alice, run_counter=41, coalesce_status="failed",
                   coalesce_started_at=now - timedelta(minutes=4, seconds=12),
                   coalesce_ended_at=now, answered_at=now - timedelta(minutes=5),
                   results=[node("FCT_ORDERS", "failed",
                                 error="SQL compilation error: invalid identifier 'AMOUNT'"),
                            node("STG_NATION", "completed")],
                   results_fetched_at=now)
    run.log("started", "Coalesce accepted the run: runCounter 41.")
    page = new_page(viewport)
    log_in(page)
    page.goto(run.get_absolute_url())

    headline = page.locator(".outcome-line")
    expect(headline).to_have_text("✕ Failed")
    expect(headline).to_be_in_viewport()
    expect(page.locator(".run-facts")).to_contain_text("Took 4 min 12 s")
    expect(page.locator("table.nodes tr.node-failed")).to_contain_text("invalid identifier")
    expect(page.get_by_role("link", name="Run again")).to_be_visible()
    expect(page.get_by_role("link", name="Rerun failed nodes")).to_be_visible()
    # Every time with its date and zone, the relative time beside it.
    expect(page.locator(".timeline time").first).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d \w+$"))
    expect(page.locator(".timeline .ago").first).to_be_visible()
    check_page(page)
    shoot(page, f"failed-{viewport}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_alert_on_a_polled_page_is_not_announced_again(new_page, log_in, alice,
                                                          demo_profile, viewport):
    # Coalesce's answer was lost: the run may have started, and the page keeps polling.
    run = make_run(demo_profile, alice, status="unknown", error_kind="timeout",
                   error_message="Coalesce did not answer in time: the run may have started.")
    page = new_page(viewport)
    log_in(page)
    page.goto(run.get_absolute_url())
    expect(page.locator(".outcome-line")).to_have_text("? Outcome unknown")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("may have started")
    page.evaluate("document.querySelector('[role=alert]').__kept = 1")

    with page.expect_request(lambda request: "/status/" in request.url):
        pass
    page.wait_for_timeout(2_500)

    assert page.evaluate("document.querySelector('[role=alert]').__kept") == 1
    check_page(page)
    shoot(page, f"unknown-{viewport}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_an_auditor_reads_the_outcome_without_actions(new_page, log_in, carol, alice,
                                                      demo_profile, viewport):
    run = live_run(demo_profile, alice)
    page = new_page(viewport)
    log_in(page, "carol")
    page.goto(run.get_absolute_url())
    expect(page.locator(".outcome-line")).to_have_text("▶ Running")
    expect(page.get_by_role("link", name="Run again")).to_have_count(0)
    expect(page.get_by_role("link", name="Start a refresh run")).to_have_count(0)
    check_page(page)
    shoot(page, f"auditor-{viewport}")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_page_with_a_message_stays_accessible(new_page, log_in, alice, admin_user,
                                                demo_profile, viewport):
    # Cancelling a run that has finished is refused with a message on the run page.
    run = make_run(demo_profile, alice, coalesce_status="completed", run_counter=4242)
    admin_user.set_password("admin-password")
    admin_user.save()
    page = new_page(viewport)
    log_in(page, admin_user.username)
    page.goto(f"/runs/{run.pk}/cancel/")
    expect(page).to_have_url(re.compile(rf"/runs/{run.pk}/$"))
    expect(page.get_by_role("status").locator(".messages li")).to_have_count(1)
    check_page(page)


class TaskWorker:
    """What `manage.py db_worker --interval 0.2` does with the sweep, in a thread: run each
    queued sweep once its time has come. Takes turns with the live server (`Turns`)."""

    def __init__(self, turns: Turns) -> None:
        self.turns, self.stop = turns, threading.Event()
        self.errors: list[BaseException] = []
        self.shared = connections[DEFAULT_DB_ALIAS]
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from django_tasks_db.models import DBTaskResult

        from runs import tasks

        if self.turns.shared:
            connections[self.shared.alias] = self.shared
        while not self.stop.is_set():
            try:
                with self.turns.lock:
                    due = DBTaskResult.objects.ready().filter(
                        task_path=tasks.sweep_runs.module_path).first()
                    if due is not None:
                        due.delete()
                        tasks.sweep_runs.call()
            except Exception as exc:  # noqa: BLE001 - asserted on by the fixture
                self.errors.append(exc)
            self.stop.wait(0.2)

    def __enter__(self):
        if self.turns.shared:
            self.shared.inc_thread_sharing()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        if self.turns.shared:
            self.shared.dec_thread_sharing()


@pytest.fixture
def simulator_options() -> dict:
    return {"run_seconds": 30}  # waitingToRun for 4.5 s, then running


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_after_a_start_the_page_shows_queued_then_coalesce_s_first_status_within_3_s(
        new_page, log_in, alice, demo_profile, turns, settings, viewport):
    import time
    import uuid

    from runs.service import RunRequest, start_run

    settings.SWEEP_INTERVAL_SECONDS = 10  # without the immediate sweep: 10 s or more
    page = new_page(viewport)
    log_in(page)
    with TaskWorker(turns) as worker:
        with turns.lock:
            run, _ = start_run(RunRequest(profile=demo_profile, job_id="5"), user=alice,
                               client_ip=None, submit_token=uuid.uuid4())
            started = time.monotonic()
        page.goto(run.get_absolute_url())
        expect(page.locator(".outcome-line")).to_have_text("… Queued")
        expect(page.locator(".timeline")).to_contain_text("Coalesce reports waitingToRun",
                                                          timeout=3_000)
        assert time.monotonic() - started <= 3.5
    assert worker.errors == []
    check_page(page)
