"""Following a run to its end in a real browser, with a sweeper running beside the server.

The run page polls its live fragment every 3 s; a background thread sweeps every 0.5 s
against a simulator whose runs take 3 s. What only a browser shows: the status changes in
place (no page load), polling stops at the end, and a failed run's rerun completes too.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import DEFAULT_DB_ALIAS, connection, connections
from playwright.sync_api import Page, expect

from runs import sweep
from runs.models import EnvironmentProfile, Run
from runs.service import RunRequest, start_run
from tests.factories import sim_profile

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RUN_SECONDS = 3
SWEEP_SECONDS = 0.5
# A run takes 3 s, the sweep lags up to 0.5 s and the page polls every 3 s.
FINISH_TIMEOUT_MS = 12_000


@pytest.fixture
def simulator_options() -> dict[str, Any]:
    """The `simulator` fixture's runs end after 3 s here."""
    return {"run_seconds": RUN_SECONDS}


@pytest.fixture
def failing_profile(simulator, analysts) -> EnvironmentProfile:
    """An environment whose runs fail two nodes (the simulator's "-fails" hint)."""
    return sim_profile(simulator.state.base_url, "demo-fails",
                       name="Failing (simulated Coalesce)", default_job_id="5",
                       groups=[analysts])


class Sweeper:
    """What the db_worker's task chain does, every 0.5 s, in a thread of its own.

    On PostgreSQL the thread has its own connection, closed when it stops (or the test
    database could not be flushed). SQLite's in-memory test database locks whole tables
    between connections, so there the thread shares the test's connection, as
    live_server's threads do; and since Django keeps one transaction state per connection,
    sweeps, requests and the test's own writes (`paused()`) then take turns.
    """

    def __init__(self) -> None:
        main = connections[DEFAULT_DB_ALIAS]  # the object itself: `connection` is a proxy
        self.shared = main if main.vendor == "sqlite" and main.is_in_memory_db() else None
        self.turn = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[BaseException | str] = []
        self.thread = threading.Thread(target=self._loop, name="sweeper", daemon=True)

    def paused(self) -> AbstractContextManager:
        return self.turn if self.shared is not None else nullcontext()

    def _request_started(self, **kwargs) -> None:
        self.turn.acquire()

    def _request_finished(self, **kwargs) -> None:
        self.turn.release()

    def start(self) -> None:
        if self.shared is not None:
            self.shared.inc_thread_sharing()
            request_started.connect(self._request_started, dispatch_uid="e2e-sweeper")
            request_finished.connect(self._request_finished, dispatch_uid="e2e-sweeper")
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        if self.shared is not None:
            request_started.disconnect(dispatch_uid="e2e-sweeper")
            request_finished.disconnect(dispatch_uid="e2e-sweeper")
            self.shared.dec_thread_sharing()

    def _loop(self) -> None:
        if self.shared is not None:
            connections[self.shared.alias] = self.shared
        try:
            while not self.stop.is_set():
                try:
                    with self.paused():
                        self.errors.extend(sweep.sweep(interval=SWEEP_SECONDS).errors)
                except Exception as exc:  # noqa: BLE001 - asserted on by the fixture
                    self.errors.append(exc)
                self.stop.wait(SWEEP_SECONDS)
        finally:
            if self.shared is None:
                connection.close()


@pytest.fixture
def sweeper(live_server, simulator) -> Iterator[Sweeper]:
    sweeper = Sweeper()
    sweeper.start()
    yield sweeper
    sweeper.close()
    assert not sweeper.thread.is_alive()
    assert not sweeper.errors, sweeper.errors


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
    expect(rows).to_have_count(5)  # the node results came with the last status
    expect(page.locator("table.nodes tr.node-failed")).to_have_count(0)
    expect(page.get_by_role("link", name="Rerun failed nodes")).to_have_count(0)


def test_a_failed_run_is_rerun_and_completes(page: Page, log_in, alice, failing_profile,
                                             sweeper):
    failed = start_and_open(page, log_in, sweeper, failing_profile, alice)

    expect_status_in_place(page, "failed")
    rows = page.locator("table.nodes tbody tr")
    expect(rows).to_have_count(5)
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
