"""A running run's node results cost Coalesce calls only while someone watches its page:
at most one results call per run per sweep interval, however many tabs poll it, and at
most SWEEP_LIVE_RESULTS_PER_ENVIRONMENT per environment per sweep. Browser polling itself
never reaches Coalesce. Real simulator, real sweep, the views through Django's client."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from runs import sweep, tasks
from runs.models import Run, SweepState
from runs.service import RunRequest, start_run
from tests.factories import sim_profile

pytestmark = pytest.mark.django_db

RESULTS = "GET /api/v1/runs/{id}/results"
INTERVAL = 10


@pytest.fixture
def simulator_options() -> dict[str, Any]:
    return {"run_seconds": 600}  # waitingToRun for the first 90 s, then running


@pytest.fixture
def demo(simulator, analysts):
    return sim_profile(simulator.state.base_url, "demo", groups=[analysts])


def _start(profile, user) -> Run:
    run, _ = start_run(RunRequest(profile=profile), user=user, client_ip=None,
                       submit_token=uuid.uuid4())
    return run


def _tabs(user, count: int) -> list[Client]:
    tabs = []
    for _ in range(count):
        tab = Client()
        tab.force_login(user)
        tabs.append(tab)
    return tabs


def _results_calls(simulator) -> int:
    return simulator.state.calls_snapshot().get(RESULTS, 0)


@pytest.mark.parametrize("tab_count", [1, 5])
def test_an_open_page_costs_at_most_one_results_call_per_interval(simulator, demo, alice,
                                                                  settings, tab_count):
    settings.SWEEP_INTERVAL_SECONDS = INTERVAL
    run = _start(demo, alice)
    simulator.state.advance(100)  # running now
    tabs = _tabs(alice, tab_count)
    url = reverse("runs:status", args=[run.pk])
    start = timezone.now()

    for step in range(3):
        for _ in range(INTERVAL // 2):  # every tab polls every 2 s through the interval
            for tab in tabs:
                assert tab.get(url).status_code == 200
        # Polls alone never reach Coalesce.
        assert _results_calls(simulator) == step
        # A second sweep inside the same interval finds the environment claimed.
        sweep.sweep(now=start + timedelta(seconds=step * INTERVAL))
        sweep.sweep(now=start + timedelta(seconds=step * INTERVAL + 1))
        assert _results_calls(simulator) == step + 1

    run.refresh_from_db()
    assert run.coalesce_status == "running" and run.results and run.results_fetched_at


def test_nobody_watching_costs_no_results_call(simulator, demo, alice, settings):
    run = _start(demo, alice)
    simulator.state.advance(100)

    sweep.sweep()

    run.refresh_from_db()
    assert run.coalesce_status == "running" and run.results == []
    assert _results_calls(simulator) == 0


def test_a_page_closed_long_enough_stops_the_results_calls(simulator, demo, alice):
    run = _start(demo, alice)
    simulator.state.advance(100)
    [tab] = _tabs(alice, 1)
    tab.get(reverse("runs:status", args=[run.pk]))

    sweep.sweep(now=timezone.now() + timedelta(minutes=2))

    assert _results_calls(simulator) == 0


def test_the_results_calls_per_environment_per_sweep_are_capped(simulator, demo, alice,
                                                                settings):
    settings.SWEEP_LIVE_RESULTS_PER_ENVIRONMENT = 2
    runs = [_start(demo, alice) for _ in range(4)]
    simulator.state.advance(100)
    [tab] = _tabs(alice, 1)
    for run in runs:
        tab.get(reverse("runs:status", args=[run.pk]))

    sweep.sweep()

    assert _results_calls(simulator) == 2


def test_a_start_brings_the_next_sweep_forward_and_keeps_one_chain(simulator, demo, alice,
                                                                   settings):
    settings.SWEEP_INTERVAL_SECONDS = INTERVAL
    first = _start(demo, alice)
    # The first run's sweep happened: the environment is claimed, the next sweep waits.
    assert sweep.sweep().environments == 1
    DBTaskResult.objects.filter(task_path=tasks.sweep_runs.module_path).update(
        run_after=timezone.now() + timedelta(seconds=INTERVAL))

    second = _start(demo, alice)

    [waiting] = DBTaskResult.objects.filter(status=TaskResultStatus.READY,
                                            task_path=tasks.sweep_runs.module_path)
    assert waiting.run_after <= timezone.now()
    assert SweepState.objects.get(profile=demo).next_sweep_at <= timezone.now()
    report = sweep.sweep()
    assert report.environments == 1
    for run in (first, second):
        run.refresh_from_db()
        assert run.coalesce_status == "waitingToRun"
