"""Several sweep workers against one database and a real simulator share the work.

Each environment's sweep is claimed for one interval with a conditional UPDATE, so two
workers never list the same environment in the same interval, and a worker that dies after
its claim leaves nothing stuck: the claim expires. The concurrent test needs PostgreSQL
(run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/<name>); the others run on both.
"""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from runs import sweep, tasks
from runs.coalesce import CoalesceClient
from runs.models import EnvironmentProfile, Run, SweepState
from tests.factories import make_run, sim_profile

pytestmark = pytest.mark.django_db(transaction=True)

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: SQLite serialises writers, so two workers cannot race",
)

ENVIRONMENTS = ("env-a", "env-b", "env-c")
RUNS_PER_ENVIRONMENT = 4
LISTING = "GET /api/v1/runs"
# Long enough that no run finishes during a test unless the simulator's clock is advanced.
RUN_SECONDS = 600


@pytest.fixture
def simulator_options() -> dict[str, Any]:
    return {"run_seconds": RUN_SECONDS}


@pytest.fixture
def profiles(simulator, analysts) -> list[EnvironmentProfile]:
    return [sim_profile(simulator.state.base_url, environment_id, groups=[analysts])
            for environment_id in ENVIRONMENTS]


def start_runs(simulator, profiles, alice, count: int) -> list[Run]:
    """`count` runs started in the simulator (environments in turn) and their Run rows."""
    answer = requests.post(f"{simulator.state.base_url}/_sim/runs", timeout=10, json={
        "count": count, "environmentIDs": [p.environment_id for p in profiles], "jobID": "7"})
    answer.raise_for_status()
    by_environment = {p.environment_id: p for p in profiles}
    runs = []
    for counter in answer.json()["runCounters"]:
        profile = by_environment[simulator.state.get_run(counter).environment_id]
        runs.append(make_run(profile, alice, job_id="7", run_counter=counter))
    return runs


@pytest.fixture
def runs(simulator, profiles, alice) -> list[Run]:
    return start_runs(simulator, profiles, alice, len(profiles) * RUNS_PER_ENVIRONMENT)


def sweep_together(workers: int, now) -> list[sweep.SweepReport]:
    """`workers` threads, each with its own database connection, sweep at the same moment."""
    barrier = threading.Barrier(workers)
    reports: list[sweep.SweepReport] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            reports.append(sweep.sweep(now=now))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            failures.append(exc)
        finally:
            connection.close()  # this thread's own connection, or the test DB can't be dropped

    threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    assert len(reports) == workers
    return reports


@needs_postgresql
def test_two_workers_list_each_environment_once_per_interval(simulator, profiles, runs):
    now = timezone.now()
    for interval_number in range(3):
        moment = now + timedelta(seconds=10 * interval_number)
        before = simulator.state.calls_snapshot().get(LISTING, 0)

        reports = sweep_together(2, moment)

        # One listing per environment (3), not one per worker and environment (6).
        assert simulator.state.calls_snapshot().get(LISTING, 0) - before == len(ENVIRONMENTS)
        assert sum(r.environments for r in reports) == len(ENVIRONMENTS)
        assert sum(r.calls for r in reports) == len(ENVIRONMENTS)  # nothing finished
        assert not [e for r in reports for e in r.errors]
        # And every environment was the one listed: all its runs were refreshed at `moment`.
        assert set(Run.objects.values_list("last_checked_at", flat=True)) == {moment}
    assert set(Run.objects.values_list("coalesce_status", flat=True)) == {"waitingToRun"}
    assert simulator.state.calls_snapshot() == {LISTING: 3 * len(ENVIRONMENTS)}


def test_a_worker_that_dies_after_its_claim_leaves_nothing_stuck(simulator, profiles, runs):
    now = timezone.now()
    dead, *alive = profiles
    # The dead worker claimed env-a, then vanished before calling Coalesce.
    assert sweep.claim_environment(dead, now, 10)

    report = sweep.sweep(now=now, interval=10)
    assert report.environments == len(alive)
    assert simulator.state.calls_snapshot() == {LISTING: len(alive)}
    assert not Run.objects.filter(profile=dead, last_checked_at__isnull=False).exists()

    # Within the interval nobody may take it: the claim holds...
    assert sweep.sweep(now=now + timedelta(seconds=9), interval=10).environments == 0
    # ...and after it, the next sweep picks env-a up (with the others, due again).
    later = now + timedelta(seconds=10)
    assert sweep.sweep(now=later, interval=10).environments == len(profiles)
    assert set(Run.objects.filter(profile=dead).values_list("last_checked_at", flat=True)) == {
        later}
    state = SweepState.objects.get(profile=dead)
    assert (state.last_sweep_at, state.next_sweep_at) == (later, later + timedelta(seconds=10))


def test_a_worker_that_crashes_mid_sweep_leaves_nothing_stuck(simulator, profiles, runs,
                                                              monkeypatch):
    now = timezone.now()

    class Killed(BaseException):
        """Like a SIGKILL: not an Exception, so the sweep's per-environment guard
        (which keeps one environment's error from stopping the others) lets it through."""

    def crash(*args, **kwargs):
        raise Killed

    # Dies after its first listing came back, before writing anything.
    monkeypatch.setattr(sweep, "_apply_listing", crash)
    with pytest.raises(Killed):
        sweep.sweep(now=now, interval=10)
    monkeypatch.undo()
    assert simulator.state.calls_snapshot() == {LISTING: 1}

    report = sweep.sweep(now=now, interval=10)
    assert report.environments == len(profiles) - 1  # the crashed claim still holds
    report = sweep.sweep(now=now + timedelta(seconds=10), interval=10)
    assert report.environments == len(profiles)
    assert not Run.objects.filter(last_checked_at__isnull=True).exists()


def test_the_db_worker_sweeps_and_queues_the_next_sweep(simulator, profiles, alice, settings):
    settings.SWEEP_INTERVAL_SECONDS = 10
    finishing = start_runs(simulator, profiles, alice, 3)
    simulator.state.advance(RUN_SECONDS + 1)  # those three have now ended
    moving = start_runs(simulator, profiles, alice, 3)
    queued = tasks.sweep_runs.enqueue()

    out = io.StringIO()
    call_command("db_worker", "--batch", "--no-startup-delay", stdout=out, stderr=out)

    done = DBTaskResult.objects.get(pk=queued.id)
    assert done.status == "SUCCESSFUL", done.traceback
    assert done.return_value.startswith("swept 3 environment(s) with 6 Coalesce call(s)")
    for run in finishing:
        run.refresh_from_db()
        assert run.coalesce_status == "completed" and run.results_fetched_at is not None
    for run in moving:
        run.refresh_from_db()
        assert run.coalesce_status == "waitingToRun"
    # Runs are still moving, so exactly one next sweep waits, one interval later.
    [waiting] = DBTaskResult.objects.filter(status="READY", task_path=tasks.sweep_runs.module_path)
    assert timedelta(seconds=8) < waiting.run_after - done.finished_at <= timedelta(seconds=10)
    assert simulator.state.calls_snapshot() == {LISTING: 3, "GET /api/v1/runs/{id}/results": 3}


def test_it_queues_one_next_sweep_however_often_it_is_asked(simulator, profiles, runs,
                                                            settings):
    settings.SWEEP_INTERVAL_SECONDS = 10
    # A run page opened by three people while a sweep already waits for its moment.
    for _ in range(3):
        tasks.ensure_sweeping()
    assert DBTaskResult.objects.filter(task_path=tasks.sweep_runs.module_path).count() == 1


def test_a_reader_never_sees_a_finished_run_without_its_results(simulator, runs, monkeypatch):
    simulator.state.advance(RUN_SECONDS + 1)  # every run has ended
    seen = []
    get_results = CoalesceClient.get_results

    def spying(client, run_id):
        # What a run page polling right now would read: still moving, so it keeps polling.
        seen.append(Run.objects.get(run_counter=run_id).coalesce_status)
        return get_results(client, run_id)

    monkeypatch.setattr(CoalesceClient, "get_results", spying)
    assert sweep.sweep().finished == len(runs)
    assert set(seen) == {""}
    assert not Run.objects.filter(results_fetched_at__isnull=True).exists()
    assert set(Run.objects.values_list("coalesce_status", flat=True)) == {"completed"}
