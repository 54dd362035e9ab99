"""POST /scheduler/cancelRun and POST /scheduler/rerun."""

from __future__ import annotations

import pytest
import requests

from tests.simulator.support import (
    AUTH,
    basic_body,
    cancel,
    cancel_body,
    error_string,
    get,
    list_runs,
    rerun,
    results_of,
    start,
    started,
    status_of,
    url,
)

# --- cancel ----------------------------------------------------------------------------------




@pytest.mark.parametrize("seconds", [0, 3], ids=["waitingToRun", "running"])
def test_it_cancels_a_waiting_or_running_run(simulator, openapi, seconds):
    run_id = started(simulator)
    simulator.state.advance(seconds)

    response = cancel(simulator, cancel_body(run_id))

    assert (response.status_code, response.content) == (204, b"")
    simulator.state.advance(10)  # it stays canceled and never finishes
    info = get(simulator, f"/api/v1/runs/{run_id}").json()
    openapi(info, "/api/v1/runs/{runID}", "get")
    assert (info["runStatus"], info["runDetails"]["canceled"]) == ("canceled", True)
    assert info["runEndTime"] == f"2026-01-01T00:00:0{seconds}.000Z"
    assert status_of(simulator, run_id) == "canceled"
    assert [r["id"] for r in list_runs(simulator, runStatus="canceled").json()["data"]] == [run_id]


def test_a_canceled_run_shows_the_interrupted_node(simulator, openapi):
    run_id = started(simulator)
    first, second, *_ = simulator.state.nodes("env-1")
    count = len(simulator.state.get_run(run_id).nodes)
    simulator.state.advance(0.9 + 5.1 * 1.5 / count)  # halfway through the second node
    cancel(simulator, cancel_body(run_id))
    simulator.state.advance(10)

    body = get(simulator, f"/api/v1/runs/{run_id}/results").json()

    openapi(body, "/api/v1/runs/{runID}/results", "get")
    assert [(n["name"], n["runState"]) for n in body["data"]] == [
        (first.name, "complete"),
        (second.name, "canceled"),
    ]
    interrupted = body["data"][1]["queryResults"][-1]
    assert (interrupted["isRunning"], interrupted["success"]) == (False, False)
    assert interrupted["error"]["errorString"] == "SQL execution canceled"


def test_it_refuses_to_cancel_a_finished_run(simulator, openapi):
    done, failed = started(simulator), started(simulator, "env-fails")  # at 0 and 1 ms
    simulator.state.advance(7)

    for run_id, environment_id, status in (
        (done, "env-1", "completed"),
        (failed, "env-fails", "failed"),
    ):
        response = cancel(simulator, cancel_body(run_id, environment_id))
        assert response.status_code == 400
        assert f"run {run_id} is {status}" in error_string(response)
        openapi(response.json(), "/scheduler/cancelRun", "post", "400")
    assert status_of(simulator, done) == "completed"


def test_it_refuses_a_second_cancel(simulator):
    run_id = started(simulator)
    assert cancel(simulator, cancel_body(run_id)).status_code == 204

    again = cancel(simulator, cancel_body(run_id))

    assert again.status_code == 400
    assert "is canceled" in error_string(again)


BAD_CANCELS = {
    "runID-string": (cancel_body("1"), "runID is required and must be an integer"),
    "runID-bool": (cancel_body(True), "runID"),
    "runID-missing": ({"orgID": "o", "environmentID": "env-1"}, "runID"),
    "orgID-missing": ({"runID": 1, "environmentID": "env-1"}, "orgID is required"),
    "orgID-number": (cancel_body(1, orgID=5), "orgID"),
    "environmentID-missing": ({"runID": 1, "orgID": "o"}, "environmentID is required"),
    "environmentID-mismatch": (cancel_body(1, "env-2"), "does not belong to that environmentID"),
    "unknown-run": (cancel_body(42), "run 42 not found"),
    "unknown-field": (cancel_body(1, runCounter=1), "unknown field(s): runCounter"),
    "not-an-object": ([1], "JSON object"),
}


@pytest.mark.parametrize("body,expected", BAD_CANCELS.values(), ids=BAD_CANCELS.keys())
def test_it_rejects_a_bad_cancel(simulator, body, expected):
    started(simulator)

    response = cancel(simulator, body)

    assert response.status_code == 400
    assert expected in error_string(response)
    assert status_of(simulator, 1) == "waitingToRun"


# --- rerun -----------------------------------------------------------------------------------


def test_a_rerun_of_a_failed_run_reruns_only_the_failed_nodes_and_completes(simulator, openapi):
    original = started(simulator, "env-fails", jobID="4", parallelism=2)
    simulator.state.advance(6)

    response = rerun(simulator, str(original))

    assert response.status_code == 200
    openapi(response.json(), "/scheduler/rerun", "post")
    new = response.json()["runCounter"]
    assert new == original + 1
    assert status_of(simulator, new) == "waitingToRun"
    simulator.state.advance(6)
    info = get(simulator, f"/api/v1/runs/{new}").json()
    openapi(info, "/api/v1/runs/{runID}", "get")
    assert (info["runStatus"], info["reRunID"], info["environmentID"]) == (
        "completed",
        str(original),
        "env-fails",
    )
    assert (info["runDetails"]["jobID"], info["runDetails"]["parallelism"]) == (4, 2)
    assert info["runDetails"]["nodesInRun"] == 2
    nodes = results_of(simulator, new)
    assert [n["name"] for n in nodes] == ["FCT_ORDERS", "FCT_REVENUE"]
    assert all(q["success"] and "error" not in q for n in nodes for q in n["queryResults"])
    [summary] = list_runs(simulator, limit=1).json()["data"]
    assert summary["reRunID"] == str(original)
    assert status_of(simulator, original) == "failed"  # the original is unchanged


def test_a_rerun_of_a_node_outside_the_classic_five_completes(simulator):
    # A failing selection without FCT_ORDERS fails its last catalogue node; the rerun
    # runs that node, with the same SQL.
    original = started(simulator, "env-fails", includeNodesSelector="{ location: STAGING }")
    simulator.state.advance(6)
    [failed] = simulator.state.get_run(original).failing_nodes

    new = rerun(simulator, str(original)).json()["runCounter"]
    simulator.state.advance(6)

    [node] = results_of(simulator, new)
    assert (node["name"], node["runState"], status_of(simulator, new)) == (
        failed, "complete", "completed")
    [before] = [n for n in results_of(simulator, original) if n["name"] == failed]
    assert [q["sql"] for q in node["queryResults"]] == [q["sql"] for q in before["queryResults"]]


def test_a_rerun_keeps_the_original_parameters_unless_new_ones_are_sent(simulator):
    body = basic_body("env-fails")
    body["parameters"] = {"A": "1"}
    original = start(simulator, body).json()["runCounter"]
    simulator.state.advance(6)

    kept = rerun(simulator, str(original)).json()["runCounter"]
    replaced = rerun(simulator, str(original), parameters={"B": "2"}).json()["runCounter"]

    assert simulator.state.get_run(kept).parameters == {"A": "1"}
    assert simulator.state.get_run(replaced).parameters == {"B": "2"}


def test_it_refuses_to_rerun_a_run_that_did_not_fail(simulator, openapi):
    running_failer, completed = started(simulator, "env-fails"), started(simulator)
    simulator.state.advance(3)
    assert rerun(simulator, str(running_failer)).status_code == 400  # not failed yet
    simulator.state.advance(3)
    rerun_id = rerun(simulator, str(running_failer)).json()["runCounter"]
    simulator.state.advance(6)

    for run_id, status in ((completed, "completed"), (rerun_id, "completed"), (99, None)):
        response = rerun(simulator, str(run_id))
        assert response.status_code == 400
        openapi(response.json(), "/scheduler/rerun", "post", "400")
        expected = f"run {run_id} is {status}" if status else f"run {run_id} not found"
        assert expected in error_string(response)
    assert len(simulator.state.runs) == 3


BAD_RERUNS = {
    "runID-int": ({"runDetails": {"runID": 1}}, "runDetails.runID is required"),
    "runID-text": ({"runDetails": {"runID": "one"}}, "runDetails.runID"),
    "runDetails-missing": ({"runDetails": None}, "runDetails is required"),
    "environmentID-given": (
        {"runDetails": {"runID": "1", "environmentID": "env-fails"}},
        "unknown runDetails field(s): environmentID",
    ),
    "force-not-bool": (
        {"runDetails": {"runID": "1", "forceIgnoreWorkspaceStatus": "yes"}},
        "forceIgnoreWorkspaceStatus must be a boolean",
    ),
    "credentials-missing": ({"userCredentials": None}, "userCredentials is required"),
    "credentials-bad": (
        {"userCredentials": {"snowflakeAuthType": "Basic", "snowflakeUsername": "U"}},
        "userCredentials.snowflakePassword is required for Basic",
    ),
    "parameters-bad": ({"parameters": {"A": 1}}, "parameters.A must be a string"),
}


@pytest.mark.parametrize("change,expected", BAD_RERUNS.values(), ids=BAD_RERUNS.keys())
def test_it_rejects_a_bad_rerun_body(simulator, change, expected):
    started(simulator, "env-fails")
    simulator.state.advance(6)
    body = {"runDetails": {"runID": "1"}, "userCredentials": basic_body()["userCredentials"]}
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}

    response = requests.post(url(simulator, "/scheduler/rerun"), json=body, headers=AUTH, timeout=5)

    assert response.status_code == 400
    assert expected in error_string(response)
    assert len(simulator.state.runs) == 1


def test_a_rerun_is_recorded_with_secrets_masked_and_follows_the_environment_mode(simulator):
    started(simulator, "env-fails")
    simulator.state.advance(6)
    simulator.state.set_behaviour("env-fails", "http429")

    response = rerun(simulator, "1")

    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    received = simulator.state.requests_snapshot()[-1]
    assert (received["path"], received["status"], received["mode"]) == (
        "/scheduler/rerun",
        429,
        "http429",
    )
    assert received["body"]["userCredentials"]["snowflakePassword"] == "***"
    assert len(simulator.state.runs) == 1
