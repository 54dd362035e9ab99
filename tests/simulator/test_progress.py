"""How a run progresses with the clock, its results, and how it ends."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import requests

from coalesce_simulator import SimulatorState
from coalesce_simulator.run import FAILED_NODES, OTHER_FAILURE
from tests.simulator.support import (
    PASSWORD,
    T0_ISO,
    basic_body,
    error_string,
    get,
    results_of,
    start,
    started,
    status_of,
    url,
)


def catalogue_names(server, environment_id: str = "env-1") -> list[str]:
    """The environment's node names in catalogue order: what a run of it all reports."""
    return [node.name for node in server.state.nodes(environment_id)]

# --- progress over time ------------------------------------------------------------------------


def test_a_run_waits_then_runs_then_completes_as_the_clock_moves(simulator, openapi):
    run_id = started(simulator)
    seen = []
    for seconds in (0, 0.899, 0.001, 5.099, 0.001):  # to 0.899, 0.9, 5.999, 6.0
        simulator.state.advance(seconds)
        answer = get(simulator, "/scheduler/runStatus", runCounter=run_id).json()
        openapi(answer, "/scheduler/runStatus", "get")
        seen.append(answer["runStatus"])

    assert seen == ["waitingToRun", "waitingToRun", "running", "running", "completed"]
    info = get(simulator, f"/api/v1/runs/{run_id}").json()
    assert (info["runStartTime"], info["runEndTime"]) == (T0_ISO, "2026-01-01T00:00:06.000Z")
    assert simulator.state.get_run(run_id).status == "completed"


def test_a_run_has_no_end_time_until_it_ends(simulator):
    run_id = started(simulator)
    simulator.state.advance(3)

    info = get(simulator, f"/api/v1/runs/{run_id}").json()

    assert info["runStatus"] == "running"
    assert "runEndTime" not in info


def test_results_show_the_nodes_started_so_far_with_one_running(simulator, component):
    run_id = started(simulator)
    names = catalogue_names(simulator)
    assert results_of(simulator, run_id) == []  # still waiting

    # The nodes share the 5.1 s of running evenly: halfway through the third one.
    simulator.state.advance(0.9 + 5.1 * 2.5 / len(names))
    nodes = results_of(simulator, run_id)

    assert [n["name"] for n in nodes] == names[:3]
    assert [n["isRunning"] for n in nodes] == [False, False, True]
    running = nodes[-1]["queryResults"][-1]
    assert (running["isRunning"], running["status"], "endTime" in running) == (
        True,
        "Running",
        False,
    )
    for node in nodes:
        component(node, "RunResult")

    simulator.state.advance(6)
    nodes = results_of(simulator, run_id)
    assert [n["name"] for n in nodes] == names
    assert not any(n["isRunning"] for n in nodes)
    assert all(q["success"] for n in nodes for q in n["queryResults"])


@pytest.mark.parametrize("details", [{}, {"jobID": "5"}], ids=["no-job", "job-without-selectors"])
def test_a_run_without_selectors_reports_every_node_of_the_catalogue(simulator, details):
    # Coalesce refreshes the whole environment when nothing is selected, and the dashboard
    # previews exactly the node list this endpoint gives it.
    run_id = started(simulator, **details)
    simulator.state.advance(6)

    catalogue = get(simulator, "/api/v1/environments/env-1/nodes").json()["data"]
    nodes = results_of(simulator, run_id)
    info = get(simulator, f"/api/v1/runs/{run_id}").json()

    ran = {n["nodeID"]: n["name"] for n in nodes}
    assert len(ran) == len(nodes)  # no node twice
    assert ran == {node["id"]: node["name"] for node in catalogue}
    assert [n["name"] for n in nodes] == catalogue_names(simulator)  # upstream first
    assert info["runDetails"]["nodesInRun"] == len(catalogue) == 300
    assert info["runStatus"] == "completed"


def test_results_are_in_the_documented_shape(simulator, openapi, component):
    run_id = started(simulator)
    simulator.state.advance(6)

    body = get(simulator, f"/api/v1/runs/{run_id}/results").json()

    openapi(body, "/api/v1/runs/{runID}/results", "get")
    [node] = [n for n in body["data"] if n["name"] == "STG_ORDERS"]
    component(node, "RunResult")
    create, insert = node["queryResults"]
    assert (create["name"], insert["name"]) == ("Create Table", "Insert STG_ORDERS")
    assert create["sql"].startswith("CREATE OR REPLACE TABLE ANALYTICS.STAGING.STG_ORDERS")
    assert insert["sql"].startswith("INSERT INTO ANALYTICS.STAGING.STG_ORDERS")
    assert insert["rowsInserted"] > 0
    assert (insert["rowsUpdated"], insert["rowsDeleted"], create["rowsInserted"]) == (0, 0, 0)
    assert insert["warehouse"] == "WH"  # from the credentials' names
    for stage in (create, insert):
        component(stage, "QueryResult")
        assert (stage["success"], stage["status"], stage["isRunning"]) == (True, "Success", False)
        assert datetime.fromisoformat(stage["startTime"]) <= datetime.fromisoformat(
            stage["endTime"]
        )
    assert create["endTime"] == insert["startTime"]
    assert "error" not in insert


def test_a_node_id_is_stable_per_environment(simulator):
    first, second, other = started(simulator), started(simulator), started(simulator, "env-2")
    simulator.state.advance(7)

    ids = [results_of(simulator, run)[0]["nodeID"] for run in (first, second, other)]

    assert ids[0] == ids[1] != ids[2]


# --- outcomes ------------------------------------------------------------------------------------

OUTCOMES = {
    "environment-ending-fails": ("warehouse-fails", {}, "failed"),
    "job-13": ("env-1", {"jobID": "13"}, "failed"),
    "job-ending-fails": ("env-1", {"jobID": "nightly-fails"}, "failed"),
    "plain": ("env-1", {"jobID": "3"}, "completed"),
    "no-job": ("env-1", {}, "completed"),
    "fails-in-the-middle": ("env-fails-not", {}, "completed"),
    "force-ignore": ("env-1", {"forceIgnoreWorkspaceStatus": True}, "completed"),
}


@pytest.mark.parametrize("environment_id,details,outcome", OUTCOMES.values(), ids=OUTCOMES.keys())
def test_the_final_state_follows_the_outcome_hints(
    simulator, openapi, environment_id, details, outcome
):
    run_id = started(simulator, environment_id, **details)
    simulator.state.advance(6)

    info = get(simulator, f"/api/v1/runs/{run_id}").json()
    nodes = results_of(simulator, run_id)

    openapi(info, "/api/v1/runs/{runID}", "get")
    assert info["runStatus"] == outcome
    assert [n["name"] for n in nodes] == catalogue_names(simulator, environment_id)
    failed = [n["name"] for n in nodes if n["runState"] == "failed"]
    if outcome == "failed":
        assert failed == ["FCT_ORDERS", "FCT_REVENUE"]
        assert info["runFailureReason"] == "2 of 300 nodes failed: FCT_ORDERS, FCT_REVENUE"
    else:
        assert failed == []
        assert "runFailureReason" not in info


def test_a_failed_node_carries_the_snowflake_error_and_its_sql(simulator, component):
    run_id = started(simulator, "env-fails")
    simulator.state.advance(6)

    by_name = {n["name"]: n for n in results_of(simulator, run_id)}

    create, insert = by_name["FCT_ORDERS"]["queryResults"]
    assert create["success"] is True
    assert (insert["success"], insert["status"], insert["rowsInserted"]) == (False, "Failed", 0)
    assert insert["error"] == {
        "errorString": "SQL compilation error: invalid identifier 'AMOUNT'",
        "errorDetail": FAILED_NODES["FCT_ORDERS"][1],
    }
    assert "AMOUNT" in insert["sql"]
    assert by_name["FCT_REVENUE"]["queryResults"][1]["error"]["errorString"].startswith(
        "SQL compilation error: Object 'ANALYTICS.MART.FCT_ORDERS' does not exist"
    )
    component(insert, "QueryResult")
    assert by_name["STG_ORDERS"]["runState"] == "complete"


def test_a_failing_selection_without_the_failing_nodes_fails_its_last_node(simulator):
    # A failure names only nodes the run reports, even when FCT_ORDERS isn't among them.
    run_id = started(simulator, "env-fails", includeNodesSelector="{ location: STAGING }")
    simulator.state.advance(6)

    nodes = results_of(simulator, run_id)
    info = get(simulator, f"/api/v1/runs/{run_id}").json()

    last = nodes[-1]["name"]
    assert all(n["name"].startswith("STG_") for n in nodes)
    assert [n["name"] for n in nodes if n["runState"] == "failed"] == [last]
    assert nodes[-1]["queryResults"][1]["error"]["errorString"] == OTHER_FAILURE[0]
    assert info["runFailureReason"] == f"1 of {len(nodes)} nodes failed: {last}"


def test_run_info_echoes_the_details_without_secrets(simulator, openapi):
    body = basic_body(
        jobID="7",
        includeNodesSelector="{ location: MART }",
        parallelism=4,
        forceIgnoreWorkspaceStatus=True,
    )
    body["parameters"] = {"TARGET_DATE": "2026-01-01"}
    run_id = start(simulator, body).json()["runCounter"]

    response = get(simulator, f"/api/v1/runs/{run_id}")

    info = response.json()
    openapi(info, "/api/v1/runs/{runID}", "get")
    assert info["runDetails"] == {
        "environmentID": "env-1",
        "jobID": 7,  # an integer in RunInfo
        "includeNodesSelector": "{ location: MART }",
        "parallelism": 4,
        "forceIgnoreEnvironmentStatus": True,
        "canceled": False,
        "nodesInRun": 76,  # the MART nodes of the default 300-node catalogue
    }
    assert info["runTimeParameters"] == {"TARGET_DATE": "2026-01-01"}
    assert info["userCredentials"]["snowflakeUsername"] == "SVC_USER"
    assert info["userCredentials"]["snowflakeAuthType"] == "Basic"
    assert PASSWORD not in response.text
    assert "reRunID" not in info


@pytest.mark.parametrize("suffix", ["", "/results"])
def test_an_unknown_run_is_404_and_a_non_number_400(simulator, openapi, suffix):
    missing = get(simulator, f"/api/v1/runs/99{suffix}")
    text = get(simulator, f"/api/v1/runs/abc{suffix}")

    assert missing.status_code == 404
    openapi(missing.json(), f"/api/v1/runs/{{runID}}{suffix}", "get", "404")
    assert text.status_code == 400
    assert "runID" in error_string(text)


def test_progress_follows_the_real_clock_by_default():
    run = SimulatorState(run_seconds=0.2).start_run({"environmentID": "env-1"}, {})
    assert run.status == "waitingToRun"

    time.sleep(0.25)

    assert run.status == "completed"
    instant = SimulatorState(run_seconds=0).start_run({"environmentID": "env-1"}, {})
    assert instant.status == "completed"
    with pytest.raises(ValueError, match="run_seconds"):
        SimulatorState(run_seconds=-1)


def test_the_clock_can_be_advanced_over_http(simulator):
    run_id = started(simulator)

    response = requests.post(url(simulator, "/_sim/advance"), json={"seconds": 6}, timeout=5)

    assert response.json() == {"now": "2026-01-01T00:00:06.000Z"}
    assert status_of(simulator, run_id) == "completed"
    refused = requests.post(url(simulator, "/_sim/advance"), json={"seconds": -1}, timeout=5)
    assert refused.status_code == 400
