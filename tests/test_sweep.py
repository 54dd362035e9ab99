"""The status sweep: how many calls it makes, what it writes, and when it gives up."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import responses
from django.utils import timezone
from responses import matchers

from runs import sweep
from runs.models import TERMINAL, Run, SweepState
from tests.factories import make_run

pytestmark = pytest.mark.django_db

BASE = "https://app.coalescesoftware.io"
LIST_URL = f"{BASE}/api/v1/runs"


def _run(profile, user, *, counter=None, created_at=None, **fields) -> Run:
    """Run `counter` in Coalesce, started five minutes ago unless told otherwise."""
    return make_run(profile, user, run_counter=counter,
                    created_at=created_at or timezone.now() - timedelta(minutes=5), **fields)


def _summary(run_id: int, status: str, *, job="7", parallelism=8, started=None, ended=None):
    started = started or timezone.now() - timedelta(minutes=4)
    item = {"id": run_id, "runType": "refresh", "runStatus": status,
            "runStartTime": started.isoformat().replace("+00:00", "Z"),
            "environmentID": "42",
            "runDetails": {"environmentID": "42", "jobID": int(job) if job else None,
                           "parallelism": parallelism}}
    if ended:
        item["runEndTime"] = ended.isoformat().replace("+00:00", "Z")
    if not job:
        del item["runDetails"]["jobID"]
    return item


def _listing(items, *, next_cursor=None):
    body = {"data": items, "limit": 1000, "orderBy": "runStartTime", "orderByDirection": "asc"}
    if next_cursor is not None:
        body["next"] = next_cursor
    return body


def _results_body(failed: bool):
    stage = {"name": "Insert FCT", "success": not failed, "rowsInserted": 3,
             "sql": "insert into FCT select amount from x"}
    if failed:
        stage["error"] = {"errorString": "invalid identifier 'AMOUNT'", "errorDetail": "line 1"}
    return {"data": [{"nodeID": "n1", "name": "FCT_ORDERS", "queryResults": [stage]}]}


@responses.activate
def test_it_costs_one_listing_plus_one_results_call_per_finished_run(alice, profile):
    runs = [_run(profile, alice, counter=100 + i) for i in range(200)]
    ended = timezone.now()
    items = [_summary(100 + i, "running") for i in range(200)]
    items[3] = _summary(103, "completed", ended=ended)
    items[7] = _summary(107, "failed", ended=ended)
    responses.get(LIST_URL, json=_listing(items), match=[matchers.query_param_matcher(
        {"environmentID": "42", "orderBy": "runStartTime", "orderByDirection": "asc",
         "limit": "500", "detail": "false", "runType": "refresh"}, strict_match=False)])
    responses.get(f"{LIST_URL}/103/results", json=_results_body(failed=False))
    responses.get(f"{LIST_URL}/107/results", json=_results_body(failed=True))

    report = sweep.sweep()

    assert len(responses.calls) == 3  # not 200: one listing, two results calls
    assert (report.calls, report.finished, report.environments) == (3, 2, 1)
    statuses = dict(Run.objects.values_list("run_counter", "coalesce_status"))
    assert statuses[103] == "completed" and statuses[107] == "failed"
    assert statuses[100] == "running"
    failed = Run.objects.get(run_counter=107)
    assert failed.results[0]["status"] == "failed"
    assert "invalid identifier" in failed.results[0]["error"]
    assert failed.coalesce_ended_at is not None
    # Why it failed is summarised once, when the results are stored, for the history.
    assert failed.failure_summary == "1 of 1 node failed: FCT_ORDERS. invalid identifier 'AMOUNT'"
    assert "fct_orders" in failed.search_text
    assert Run.objects.get(run_counter=103).failure_summary == ""
    # The timeline records each change of status once.
    assert list(runs[0].events.values_list("kind", flat=True)) == ["coalesce_running"]


@responses.activate
def test_it_follows_further_pages_of_the_listing(alice, profile):
    runs = [_run(profile, alice, counter=10 + i) for i in range(3)]
    pages = {None: ([_summary(10, "running"), _summary(11, "running")], "c2"),
             "c2": ([_summary(12, "completed", ended=timezone.now())], None)}

    def listing(request):
        cursor = request.params.get("startingFrom")
        items, next_cursor = pages["c2" if cursor == "c2" else None]
        return 200, {}, json.dumps(_listing(items, next_cursor=next_cursor))

    responses.add_callback(responses.GET, LIST_URL, callback=listing)
    responses.get(f"{LIST_URL}/12/results", json={"data": []})
    report = sweep.sweep()
    assert report.calls == 3  # two pages of one listing, one results call
    runs[2].refresh_from_db()
    assert runs[2].coalesce_status == "completed"


@responses.activate
def test_a_second_sweep_in_the_same_interval_calls_nothing(alice, profile):
    _run(profile, alice, counter=1)
    responses.get(LIST_URL, json=_listing([_summary(1, "running")]))
    now = timezone.now()
    assert sweep.sweep(now=now).environments == 1
    assert sweep.sweep(now=now + timedelta(seconds=3)).environments == 0  # claimed
    assert len(responses.calls) == 1
    assert sweep.sweep(now=now + timedelta(seconds=11)).environments == 1  # next interval


@responses.activate
def test_it_stops_when_every_run_has_finished(alice, profile):
    _run(profile, alice, counter=1, coalesce_status="completed")
    assert sweep.sweep().environments == 0
    assert len(responses.calls) == 0


@responses.activate
def test_it_backs_off_on_429_honouring_retry_after(alice, profile):
    _run(profile, alice, counter=1)
    responses.get(LIST_URL, status=429, headers={"Retry-After": "120"},
                  json={"error": {"errorString": "Too many requests"}})
    now = timezone.now()
    report = sweep.sweep(now=now)
    assert len(report.errors) == 1 and "limiting" in report.errors[0]
    state = SweepState.objects.get(profile=profile)
    assert state.backoff_until == now + timedelta(seconds=120)
    # Past the interval but within Retry-After: still waiting.
    assert sweep.sweep(now=now + timedelta(seconds=30)).environments == 0
    assert len(responses.calls) == 1
    responses.replace(responses.GET, LIST_URL, json=_listing([_summary(1, "running")]))
    assert sweep.sweep(now=now + timedelta(seconds=121)).environments == 1
    state.refresh_from_db()
    assert state.backoff_until is None and state.backoff_seconds == 0


@responses.activate
def test_backoff_grows_without_retry_after(alice, profile):
    _run(profile, alice, counter=1)
    responses.get(LIST_URL, status=429, json={"error": {"errorString": "slow down"}})
    now = timezone.now()
    sweep.sweep(now=now)
    first = SweepState.objects.get(profile=profile).backoff_seconds
    sweep.sweep(now=now + timedelta(seconds=first + 1))
    assert SweepState.objects.get(profile=profile).backoff_seconds == first * 2


@responses.activate
@pytest.mark.parametrize("status", ["completed", "failed", "canceled"])
def test_every_terminal_state_ends_following(alice, profile, status):
    run = _run(profile, alice, counter=5, coalesce_status="running")
    responses.get(LIST_URL, json=_listing([_summary(5, status, ended=timezone.now())]))
    responses.get(f"{LIST_URL}/5/results", json={"data": []})
    sweep.sweep()
    run.refresh_from_db()
    assert run.coalesce_status == status and run.results_fetched_at is not None
    assert not Run.objects.active().filter(pk=run.pk).exists()


@responses.activate
@pytest.mark.parametrize("sequence", [["waitingToRun", "running", "completed"],
                                      ["initializing", "rendering", "running", "failed"],
                                      ["waitingToRun", "canceled"]])
def test_it_walks_through_each_transition(alice, profile, sequence):
    run = _run(profile, alice, counter=5)
    now = timezone.now()
    responses.get(f"{LIST_URL}/5/results", json={"data": []})
    for step, status in enumerate(sequence):
        ended = now if status in TERMINAL else None
        responses.upsert(responses.GET, LIST_URL, json=_listing([_summary(5, status,
                                                                         ended=ended)]))
        sweep.sweep(now=now + timedelta(seconds=11 * step))
        run.refresh_from_db()
        assert run.coalesce_status == status
    kinds = list(run.events.values_list("kind", flat=True))
    assert kinds == [f"coalesce_{s}" for s in sequence]


@responses.activate
def test_an_unknown_status_is_stored_and_shown_not_crashed_on(alice, profile):
    run = _run(profile, alice, counter=5)
    responses.get(LIST_URL, json=_listing([_summary(5, "queuedSomewhereNew")]))
    sweep.sweep()
    run.refresh_from_db()
    assert run.coalesce_status == "queuedSomewhereNew"
    assert Run.objects.active().filter(pk=run.pk).exists()  # still followed


def test_it_stops_following_runs_older_than_the_maximum_age(alice, profile, settings):
    settings.SWEEP_MAX_AGE_HOURS = 48
    old = _run(profile, alice, counter=5, created_at=timezone.now() - timedelta(hours=49))
    with responses.RequestsMock():  # nothing may be called for it
        sweep.sweep()
    old.refresh_from_db()
    assert old.stopped_following_at is not None
    assert "No longer followed" in old.events.get().message


# --- reconciliation of "submitting" and "outcome unknown" attempts ---


@responses.activate
@pytest.mark.parametrize("status", [Run.Status.UNKNOWN, Run.Status.SUBMITTING])
def test_exactly_one_match_links_the_attempt(alice, profile, status):
    attempt = _run(profile, alice, status=status, job_id="7",
                   created_at=timezone.now() - timedelta(minutes=3))
    near = attempt.created_at + timedelta(seconds=20)
    responses.get(LIST_URL, json=_listing([
        _summary(55, "running", job="7", started=near),
        _summary(56, "running", job="8", started=near),  # another job
        _summary(57, "running", job="7", parallelism=2, started=near),  # other parallelism
    ]))
    assert sweep.sweep().reconciled == 1
    attempt.refresh_from_db()
    assert (attempt.status, attempt.run_counter, attempt.coalesce_status) == (
        Run.Status.STARTED, 55, "running")
    assert "found exactly one matching Coalesce run" in attempt.events.get().message


@responses.activate
def test_a_run_already_linked_elsewhere_is_not_a_candidate(alice, profile):
    _run(profile, alice, counter=55, job_id="7")
    attempt = _run(profile, alice, status=Run.Status.UNKNOWN, job_id="7")
    responses.get(LIST_URL, json=_listing([_summary(55, "running", job="7",
                                                    started=attempt.created_at)]))
    assert sweep.sweep().reconciled == 0
    attempt.refresh_from_db()
    assert attempt.status == Run.Status.UNKNOWN


@responses.activate
@pytest.mark.parametrize(("candidates", "note"), [(0, "probably never started"),
                                                  (2, "2 Coalesce runs match")])
def test_zero_or_several_matches_are_left_for_a_person(alice, profile, candidates, note):
    attempt = _run(profile, alice, status=Run.Status.UNKNOWN, job_id="7",
                   created_at=timezone.now() - timedelta(minutes=15))
    near = attempt.created_at + timedelta(seconds=10)
    responses.get(LIST_URL, json=_listing(
        [_summary(60 + i, "running", job="7", started=near) for i in range(candidates)]))
    sweep.sweep()
    attempt.refresh_from_db()
    assert attempt.status == Run.Status.UNKNOWN and attempt.run_counter is None
    assert attempt.stopped_following_at is not None
    assert note in attempt.events.get().message


@responses.activate
def test_a_young_submitting_row_is_left_alone(alice, profile):
    attempt = _run(profile, alice, status=Run.Status.SUBMITTING,
                   created_at=timezone.now() - timedelta(seconds=20))
    responses.get(LIST_URL, json=_listing([]))
    sweep.sweep()
    attempt.refresh_from_db()
    assert attempt.status == Run.Status.SUBMITTING and attempt.stopped_following_at is None


@responses.activate
def test_a_full_page_without_next_goes_on_from_its_last_start_time(alice, profile, monkeypatch):
    monkeypatch.setattr(sweep, "LISTING_PAGE", 2)
    base = timezone.now() - timedelta(minutes=4)
    runs = [_run(profile, alice, counter=200 + i) for i in range(3)]
    items = [_summary(200 + i, "running", started=base + timedelta(seconds=i)) for i in range(3)]
    cursors = []

    def listing(request):  # two to a page, and never a `next`
        cursor = request.params["startingFrom"]
        cursors.append(cursor)
        page = items[:2] if len(cursors) == 1 else items[2:]
        return 200, {}, json.dumps(_listing(page))

    responses.add_callback(responses.GET, LIST_URL, callback=listing)

    report = sweep.sweep()

    assert report.calls == 2
    assert cursors[1] == items[1]["runStartTime"]
    assert Run.objects.filter(pk__in=[r.pk for r in runs], coalesce_status="running").count() == 3


@responses.activate
def test_it_keeps_coalesce_s_failure_reason_for_the_summary_and_the_search(alice, profile):
    _run(profile, alice, counter=300)
    item = _summary(300, "failed", ended=timezone.now())
    item["runFailureReason"] = "Warehouse WH_XL suspended"
    responses.get(LIST_URL, json=_listing([item]))
    responses.get(f"{LIST_URL}/300/results", status=500, json={"error": "down"})
    sweep.sweep()
    run = Run.objects.get(run_counter=300)
    assert run.coalesce_status == "failed" and run.results == []
    assert run.failure_summary == "Warehouse WH_XL suspended"
    assert "wh_xl" in run.search_text
