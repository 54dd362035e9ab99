"""Reading runs: runStatus, the runs list with its filters and paging, bulk creation."""

from __future__ import annotations

import time
from datetime import datetime

import jsonschema
import pytest
import requests

from tests.simulator.support import (
    AUTH,
    T0_ISO,
    all_pages,
    cancel,
    cancel_body,
    list_runs,
    run_body,
    start,
    started,
    url,
)

# --- runStatus and the runs list ---------------------------------------------------------------


def test_it_reports_run_status_with_a_link_to_itself(simulator, openapi):
    start(simulator, run_body())

    response = requests.get(
        url(simulator, "/scheduler/runStatus"), params={"runCounter": 1}, headers=AUTH, timeout=5
    )

    assert response.json() == {
        "runStatus": "waitingToRun",
        "runType": "refresh",
        "runLink": url(simulator, "/runs/1"),
    }
    openapi(response.json(), "/scheduler/runStatus", "get")


@pytest.mark.parametrize(
    "run_counter,status", [("99", 404), ("", 400), ("abc", 400)], ids=["unknown", "empty", "text"]
)
def test_it_refuses_run_status_for_a_bad_or_unknown_counter(simulator, run_counter, status):
    response = requests.get(
        url(simulator, "/scheduler/runStatus"),
        params={"runCounter": run_counter},
        headers=AUTH,
        timeout=5,
    )

    assert response.status_code == status
    assert "error" in response.json()


def test_it_lists_runs_newest_first_in_the_documented_shape(simulator, openapi):
    for env in ("a", "b", "a"):
        start(simulator, run_body(env))

    body = list_runs(simulator).json()

    openapi(body, "/api/v1/runs", "get")
    assert (body["limit"], body["orderBy"], body["orderByDirection"]) == (25, "id", "desc")
    assert [run["id"] for run in body["data"]] == [3, 2, 1]
    first = body["data"][0]
    assert (first["runType"], first["runStatus"], first["environmentID"]) == (
        "refresh",
        "waitingToRun",
        "a",
    )
    assert first["runStartTime"].endswith("Z")
    datetime.fromisoformat(first["runStartTime"])


def test_it_filters_limits_and_orders_the_runs_list(simulator):
    for env in ("a", "b", "a", "a"):
        start(simulator, run_body(env))

    def ids(**params) -> list[int]:
        return [run["id"] for run in list_runs(simulator, **params).json()["data"]]

    assert ids(environmentID="a", limit=2) == [4, 3]
    assert ids(orderByDirection="asc", limit=1) == [1]
    assert ids(environmentID="b") == [2]
    assert list_runs(simulator, limit=0).json()["data"] == []


@pytest.mark.parametrize(
    "params", [{"limit": 1001}, {"limit": -1}, {"limit": "x"}, {"orderByDirection": "up"}]
)
def test_it_refuses_a_runs_list_with_bad_parameters(simulator, params):
    response = list_runs(simulator, **params)

    assert response.status_code == 400
    assert "error" in response.json()


def test_it_checks_that_the_schema_validator_resolves_refs(openapi):
    # Guards the guard: a wrong runs list must fail, or every schema check above is hollow.
    bad = {"data": [{"id": "1", "runType": "refresh", "runStatus": "done"}], "limit": 1}

    with pytest.raises(jsonschema.ValidationError):
        openapi(bad, "/api/v1/runs", "get")


# --- the runs list ---------------------------------------------------------------------------




@pytest.mark.parametrize("order_by", ["id", "runStartTime"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_it_pages_through_runs_with_next_without_gaps_or_repeats(simulator, order_by, direction):
    simulator.state.create_runs(23, ["env-a", "env-b"])

    ids, pages = all_pages(simulator, orderBy=order_by, orderByDirection=direction, limit=5)

    expected = list(range(1, 24))
    assert ids == (expected if direction == "asc" else expected[::-1])
    assert pages == 5
    env_a, _ = all_pages(
        simulator, orderBy=order_by, orderByDirection=direction, limit=4, environmentID="env-a"
    )
    assert sorted(env_a) == list(range(1, 24, 2))


def test_the_next_cursor_is_typed_by_order_by(simulator):
    simulator.state.create_runs(3, ["env-1"])

    by_id = list_runs(simulator, limit=1).json()
    by_start = list_runs(simulator, limit=1, orderBy="runStartTime", orderByDirection="asc").json()

    assert by_id["next"] == 3
    assert by_start["next"] == T0_ISO  # each later run starts at least 1 ms later
    assert "next" not in list_runs(simulator, limit=3).json()
    assert "next" not in list_runs(simulator, limit=0).json()


def test_it_orders_by_end_time_listing_only_ended_runs(simulator):
    first, second, third, fourth = (started(simulator) for _ in range(4))
    simulator.state.advance(1)
    cancel(simulator, cancel_body(third))  # ends at 1 s
    simulator.state.advance(2)
    cancel(simulator, cancel_body(second))  # ends at 3 s
    simulator.state.advance(3.005)  # first (6.000 s) and fourth (6.003 s) have ended too; 5th not
    fifth = started(simulator)

    ids, _ = all_pages(simulator, orderBy="runEndTime", orderByDirection="asc", limit=1)
    body = list_runs(simulator, orderBy="runEndTime", limit=2).json()

    assert ids == [third, second, first, fourth]
    assert fifth not in ids
    assert [r["id"] for r in body["data"]] == [fourth, first]
    assert body["next"] == "2026-01-01T00:00:06.000Z"


def test_it_filters_by_status_and_type(simulator):
    done, failed = started(simulator), started(simulator, "env-fails")
    simulator.state.advance(7)
    waiting = started(simulator)

    def ids(**params) -> list[int]:
        return [r["id"] for r in list_runs(simulator, **params).json()["data"]]

    assert ids(runStatus="completed") == [done]
    assert ids(runStatus="failed") == [failed]
    assert ids(runStatus="waitingToRun") == [waiting]
    assert ids(runType="deploy") == []
    assert ids(runType="refresh") == [waiting, failed, done]


def test_it_lists_run_info_objects_with_detail(simulator, openapi):
    started(simulator, "env-fails", jobID="2")
    simulator.state.advance(6)

    body = list_runs(simulator, detail="true").json()

    openapi(body, "/api/v1/runs", "get")
    [info] = body["data"]
    assert info["runDetails"]["jobID"] == 2
    # Job 2 has no selectors of its own: the whole 300-node catalogue ran, and two failed.
    assert info["runFailureReason"] == "2 of 300 nodes failed: FCT_ORDERS, FCT_REVENUE"
    assert "runDetails" not in list_runs(simulator).json()["data"][0]


@pytest.mark.parametrize(
    "params",
    [
        {"runStatus": "done"},
        {"runType": "full"},
        {"detail": "yes"},
        {"orderBy": "name"},
        {"startingFrom": "abc"},
        {"orderBy": "runStartTime", "startingFrom": "yesterday"},
        {"orderBy": "runEndTime", "startingFrom": "12"},
    ],
)
def test_it_refuses_bad_list_filters_and_cursors(simulator, params):
    response = list_runs(simulator, **params)

    assert response.status_code == 400
    assert "errorString" in response.json()["error"]


# --- bulk creation -----------------------------------------------------------------------------


def test_it_creates_a_thousand_runs_at_once_and_lists_them_quickly(simulator):
    response = requests.post(
        url(simulator, "/_sim/runs"),
        json={"count": 1000, "environmentIDs": ["e1", "e2"], "jobID": "1"},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.json() == {"runCounters": list(range(1, 1001))}
    began = time.monotonic()
    ids, pages = all_pages(
        simulator, orderBy="runStartTime", orderByDirection="asc", limit=300, detail="true"
    )
    assert time.monotonic() - began < 3  # a few ms per page; quadratic work would show
    assert (ids, pages) == (list(range(1, 1001)), 4)
    e1 = list_runs(simulator, environmentID="e1", limit=1000).json()["data"]
    assert len(e1) == 500
    assert simulator.state.get_run(1000).job_id == "1"
    # /_sim calls are not counted
    assert simulator.state.calls_snapshot() == {"GET /api/v1/runs": 5}


@pytest.mark.parametrize(
    "body",
    [
        {"count": 0, "environmentIDs": ["e"]},
        {"count": True, "environmentIDs": ["e"]},
        {"count": 1, "environmentIDs": []},
        {"count": 1, "environmentIDs": [""]},
        {"count": 1, "environmentIDs": ["e"], "jobID": 1},
        [],
    ],
)
def test_it_refuses_a_bad_bulk_creation(simulator, body):
    response = requests.post(url(simulator, "/_sim/runs"), json=body, timeout=5)

    assert response.status_code == 400
    assert simulator.state.runs == {}
