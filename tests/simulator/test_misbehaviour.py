"""Misbehaviour modes: per environment, at start, at runtime, and for reads."""

from __future__ import annotations

import pytest
import requests

from coalesce_simulator.errors import AUTH_ERROR
from tests.simulator.support import (
    basic_body,
    error_string,
    get,
    list_runs,
    run_body,
    start,
    started,
    url,
)

# --- misbehaviour -----------------------------------------------------------------------------

ERROR_MODES = {
    "http429": (429, "429: Too many requests, please retry later."),
    "http400": (400, "400: Environment is not deployed"),
    "unauthorized": (401, AUTH_ERROR),
}


@pytest.mark.parametrize("mode", ERROR_MODES)
def test_it_answers_error_modes_with_the_envelope_and_starts_nothing(simulator, mode):
    status, message = ERROR_MODES[mode]

    response = start(simulator, basic_body(environment_id=f"fail-{mode}"))

    assert response.status_code == status
    assert response.json() == {"error": {"errorString": message, "errorDetail": message}}
    assert simulator.state.runs == {}
    if mode == "http429":
        assert response.headers["Retry-After"] == "7"


def test_it_answers_http500_with_an_html_page(simulator):
    response = start(simulator, run_body("fail-http500"))

    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Internal Server Error" in response.text
    assert simulator.state.runs == {}


def test_it_answers_badjson_with_truncated_json_after_starting_the_run(simulator):
    response = start(simulator, run_body("fail-badjson"))

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    assert list(simulator.state.runs) == [1]


def test_it_answers_nocounter_with_an_empty_object_after_starting_the_run(simulator):
    response = start(simulator, run_body("fail-nocounter"))

    assert (response.status_code, response.json()) == (200, {})
    assert list(simulator.state.runs) == [1]


def test_it_hangs_on_timeout_but_still_starts_the_run(simulator):
    with pytest.raises(requests.exceptions.ReadTimeout):
        start(simulator, run_body("fail-timeout"), timeout=(2, 0.3))

    [summary] = list_runs(simulator, environmentID="fail-timeout").json()["data"]
    assert summary["id"] == 1


def test_it_still_validates_the_body_for_a_misbehaving_environment(simulator):
    response = start(simulator, run_body("fail-http500", parallelism=0))

    assert response.status_code == 400


def test_it_applies_behaviours_given_at_start(simulator):
    assert start(simulator, run_body("env-boot-500")).status_code == 500


def test_it_changes_behaviour_at_runtime_over_http(simulator):
    def set_mode(environment_id: str, mode: str) -> requests.Response:
        body = {"environmentID": environment_id, "mode": mode}
        return requests.post(url(simulator, "/_sim/behaviours"), json=body, timeout=5)

    assert set_mode("env-1", "http400").status_code == 200
    assert start(simulator, run_body("env-1")).status_code == 400
    assert start(simulator, run_body("env-2")).status_code == 200  # others unaffected

    set_mode("env-1", "")
    set_mode("fail-http500", "normal")
    assert start(simulator, run_body("env-1")).status_code == 200
    assert start(simulator, run_body("fail-http500")).status_code == 200
    assert set_mode("env-1", "explode").status_code == 400


def test_it_forgets_runtime_behaviours_runs_and_counters_on_reset(simulator):
    requests.post(
        url(simulator, "/_sim/behaviours"),
        json={"environmentID": "e", "mode": "http429"},
        timeout=5,
    )
    start(simulator, run_body("env-1"))

    requests.post(url(simulator, "/_sim/reset"), timeout=5)

    assert start(simulator, run_body("e")).json() == {"runCounter": 1}
    assert requests.get(url(simulator, "/_sim/calls"), timeout=5).json() == {
        "POST /scheduler/startRun": 1
    }
    assert start(simulator, run_body("env-boot-500")).status_code == 500  # start-up ones stay


# --- rate limiting reads -------------------------------------------------------------------------


def test_http429_reads_refuses_every_read_for_the_environment(simulator):
    run_id = started(simulator, "fail-http429-reads")  # starting still works
    other = started(simulator, "env-1")

    for path, params in (
        ("/scheduler/runStatus", {"runCounter": run_id}),
        (f"/api/v1/runs/{run_id}", {}),
        (f"/api/v1/runs/{run_id}/results", {}),
        ("/api/v1/runs", {"environmentID": "fail-http429-reads"}),
    ):
        response = get(simulator, path, **params)
        assert response.status_code == 429, path
        assert response.headers["Retry-After"] == "1"
        assert error_string(response) == "429: Too many requests, please retry later."
    assert get(simulator, f"/api/v1/runs/{other}").status_code == 200
    assert list_runs(simulator).status_code == 200  # an unfiltered list names no environment


def test_http429_reads_alternate_refuses_every_other_read(simulator):
    simulator.state.set_behaviour("env-1", "http429-reads-alternate")
    run_id = started(simulator)

    codes = [get(simulator, f"/api/v1/runs/{run_id}").status_code for _ in range(4)]

    assert codes == [429, 200, 429, 200]
    assert simulator.state.calls_snapshot()["GET /api/v1/runs/{id}"] == 4
