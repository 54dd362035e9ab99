"""The token check, routing, call counting and the request log."""

from __future__ import annotations

import pytest
import requests

from coalesce_simulator.errors import AUTH_ERROR
from tests.simulator.support import (
    AUTH,
    PASSWORD,
    TOKEN,
    basic_body,
    cancel,
    cancel_body,
    get,
    list_runs,
    run_body,
    start,
    started,
    url,
)

# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": "bearer " + TOKEN},
    ],
    ids=["missing", "wrong-token", "no-scheme", "lowercase-scheme"],
)
@pytest.mark.parametrize(
    "method,path",
    [
        ("post", "/scheduler/startRun"),
        ("post", "/scheduler/rerun"),
        ("post", "/scheduler/cancelRun"),
        ("get", "/api/v1/runs"),
        ("get", "/api/v1/runs/1"),
        ("get", "/api/v1/runs/1/results"),
        ("get", "/scheduler/runStatus"),
    ],
)
def test_it_refuses_requests_without_the_exact_bearer_token(simulator, headers, method, path):
    response = requests.request(
        method,
        url(simulator, path),
        json=run_body(),
        headers=headers,
        params={"runCounter": 1},
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json() == {"error": {"errorString": AUTH_ERROR, "errorDetail": AUTH_ERROR}}
    assert simulator.state.runs == {}


def test_it_answers_401_in_the_documented_shape(simulator, openapi):
    response = start(simulator, run_body(), headers={"Authorization": "Bearer nope"})

    openapi(response.json(), "/scheduler/startRun", "post", "401")


# --- routing and call counting ------------------------------------------------------------------


def test_it_counts_calls_per_method_and_path(simulator):
    start(simulator, run_body())
    start(simulator, run_body())
    list_runs(simulator, limit=1)

    calls = requests.get(url(simulator, "/_sim/calls"), timeout=5).json()

    assert calls == {"POST /scheduler/startRun": 2, "GET /api/v1/runs": 1}


def test_it_counts_run_paths_under_their_templates_and_a_total(simulator):
    first, second = started(simulator), started(simulator)
    for run_id in (first, second, 99):
        get(simulator, f"/api/v1/runs/{run_id}")
    get(simulator, f"/api/v1/runs/{first}/results")
    get(simulator, f"/api/v1/runs/{second}/results")
    cancel(simulator, cancel_body(first))

    calls = requests.get(url(simulator, "/_sim/calls"), timeout=5).json()
    total = requests.get(url(simulator, "/_sim/calls/total"), timeout=5).json()

    assert calls == {
        "POST /scheduler/startRun": 2,
        "GET /api/v1/runs/{id}": 3,
        "GET /api/v1/runs/{id}/results": 2,
        "POST /scheduler/cancelRun": 1,
    }
    assert total == {"total": 8} and simulator.state.total_calls() == 8
    assert calls == simulator.state.calls_snapshot()


def test_it_answers_unknown_paths_with_404_and_wrong_methods_with_405(simulator):
    missing = requests.get(url(simulator, "/api/v1/nothing"), headers=AUTH, timeout=5)
    wrong = requests.get(url(simulator, "/scheduler/startRun"), headers=AUTH, timeout=5)

    assert missing.status_code == 404
    assert "errorString" in missing.json()["error"]
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"


def test_it_logs_one_line_per_request_without_token_or_body(simulator, caplog):
    caplog.set_level("INFO", logger="coalesce_simulator")

    start(simulator, basic_body())

    assert [r.getMessage() for r in caplog.records] == ["POST /scheduler/startRun -> 200"]
    assert TOKEN not in caplog.text
    assert PASSWORD not in caplog.text
