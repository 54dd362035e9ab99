"""The local Coalesce simulator, spoken to over real HTTP like the dashboard and browser tests do.

Success answers are checked against the response schemas in Coalesce's own 2024 OpenAPI file
(tests/data/coalesce-openapi-2024.yaml), so the simulator cannot drift from the real shapes.
The simulator's clock is frozen here and moved with ``state.advance``, so progress is instant
and deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from referencing import Registry
from referencing.jsonschema import DRAFT7

from coalesce_simulator import SimulatorServer, SimulatorState, make_server
from coalesce_simulator.__main__ import main
from coalesce_simulator.errors import AUTH_ERROR
from coalesce_simulator.run import FAILED_NODES, NODE_NAMES

TOKEN = "test-sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC_URI = "urn:coalesce-openapi-2024"
SPEC_PATH = Path(__file__).parent / "data" / "coalesce-openapi-2024.yaml"
PASSPHRASE = "correct horse battery"
PASSWORD = "basic-password-s3cret"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, where the frozen clock stands
T0_ISO = "2026-01-01T00:00:00.000Z"


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A simulator on a free port, served from a thread, closed after the test."""
    server = make_server(
        token=TOKEN, behaviours={"env-boot-500": "http500"}, hang_seconds=1.5, clock=lambda: T0
    )
    # A short poll interval: shutdown() waits up to one interval, and this runs per test.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()  # also ends a "timeout" hang at once
    thread.join(timeout=5)


def url(sim: SimulatorServer, path: str) -> str:
    return sim.state.base_url + path


def start(sim: SimulatorServer, body: Any, headers: dict | None = None, **kw) -> requests.Response:
    return requests.post(
        url(sim, "/scheduler/startRun"),
        json=body,
        headers=AUTH if headers is None else headers,
        timeout=kw.pop("timeout", 5),
        **kw,
    )


def list_runs(sim: SimulatorServer, **params) -> requests.Response:
    return requests.get(url(sim, "/api/v1/runs"), params=params, headers=AUTH, timeout=5)


def get(sim: SimulatorServer, path: str, **params) -> requests.Response:
    return requests.get(url(sim, path), params=params, headers=AUTH, timeout=5)


def status_of(sim: SimulatorServer, run_counter: int) -> str:
    return get(sim, "/scheduler/runStatus", runCounter=run_counter).json()["runStatus"]


def results_of(sim: SimulatorServer, run_counter: int) -> list[dict[str, Any]]:
    return get(sim, f"/api/v1/runs/{run_counter}/results").json()["data"]


def run_body(environment_id: str = "env-1", **details) -> dict[str, Any]:
    return {"runDetails": {"environmentID": environment_id, **details}}


def started(sim: SimulatorServer, environment_id: str = "env-1", **details) -> int:
    response = start(sim, basic_body(environment_id, **details))
    assert response.status_code == 200, response.text
    return response.json()["runCounter"]


def rerun(sim: SimulatorServer, run_id: Any, **extra) -> requests.Response:
    body = {"runDetails": {"runID": run_id}, "userCredentials": basic_body()["userCredentials"]}
    body.update(extra)
    return requests.post(url(sim, "/scheduler/rerun"), json=body, headers=AUTH, timeout=5)


def cancel(sim: SimulatorServer, body: Any) -> requests.Response:
    return requests.post(url(sim, "/scheduler/cancelRun"), json=body, headers=AUTH, timeout=5)


def basic_body(environment_id: str = "env-1", **details) -> dict[str, Any]:
    return {
        **run_body(environment_id, **details),
        "userCredentials": {
            "snowflakeAuthType": "Basic",
            "snowflakeUsername": "SVC_USER",
            "snowflakePassword": PASSWORD,
            "snowflakeWarehouse": "WH",
            "snowflakeRole": "TRANSFORMER",
        },
    }


def key_pair_body(key_pem: str, passphrase: str | None = None) -> dict[str, Any]:
    credentials = {
        "snowflakeAuthType": "KeyPair",
        "snowflakeUsername": "SVC_USER",
        "snowflakeKeyPairKey": key_pem,
    }
    if passphrase is not None:
        credentials["snowflakeKeyPairPass"] = passphrase
    return {**run_body(), "userCredentials": credentials}


def error_string(response: requests.Response) -> str:
    return response.json()["error"]["errorString"]


@pytest.fixture(scope="module")
def pems() -> dict[str, str]:
    """One fresh RSA 2048 key as PKCS#8 PEM, plain and passphrase-encrypted."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def pem(encryption) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ).decode()

    return {
        "plain": pem(serialization.NoEncryption()),
        "encrypted": pem(serialization.BestAvailableEncryption(PASSPHRASE.encode())),
    }


@pytest.fixture(scope="module")
def spec_registry() -> Registry:
    spec = yaml.safe_load(SPEC_PATH.read_text())
    return Registry().with_resource(SPEC_URI, DRAFT7.create_resource(spec))


@pytest.fixture(scope="module")
def openapi(spec_registry):
    """``validate(instance, path, method, status)`` against that response's OpenAPI schema."""

    def validate(instance: Any, path: str, method: str, status: str = "200") -> None:
        pointer = "/".join(
            ["paths", path.replace("/", "~1"), method, "responses", status, "content"]
            + ["application~1json", "schema"]
        )
        schema = {"$ref": f"{SPEC_URI}#/{pointer}"}
        jsonschema.Draft7Validator(schema, registry=spec_registry).validate(instance)

    return validate


@pytest.fixture(scope="module")
def component(spec_registry):
    """``validate(instance, "RunResult")`` against a schema under components/schemas."""

    def validate(instance: Any, name: str) -> None:
        schema = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
        jsonschema.Draft7Validator(schema, registry=spec_registry).validate(instance)

    return validate


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
def test_it_refuses_requests_without_the_exact_bearer_token(sim, headers, method, path):
    response = requests.request(
        method,
        url(sim, path),
        json=run_body(),
        headers=headers,
        params={"runCounter": 1},
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json() == {"error": {"errorString": AUTH_ERROR, "errorDetail": AUTH_ERROR}}
    assert sim.state.runs == {}


def test_it_answers_401_in_the_documented_shape(sim, openapi):
    response = start(sim, run_body(), headers={"Authorization": "Bearer nope"})

    openapi(response.json(), "/scheduler/startRun", "post", "401")


# --- startRun: success -----------------------------------------------------------------------


def test_it_starts_a_run_and_stores_it_without_credentials(sim, openapi):
    body = basic_body(
        jobID="3",
        includeNodesSelector="{ location: STAGING name: STG_* }",
        excludeNodesSelector="{ name: STG_OLD }",
        parallelism=4,
        forceIgnoreWorkspaceStatus=True,
    )
    body["parameters"] = {"MY_PARAM": "value"}

    response = start(sim, body)

    assert response.status_code == 200
    assert response.json() == {"runCounter": 1}
    openapi(response.json(), "/scheduler/startRun", "post")
    run = sim.state.get_run(1)
    assert (run.environment_id, run.job_id, run.parallelism) == ("env-1", "3", 4)
    assert run.include_nodes_selector == "{ location: STAGING name: STG_* }"
    assert run.exclude_nodes_selector == "{ name: STG_OLD }"
    assert run.force_ignore_workspace_status is True
    assert run.parameters == {"MY_PARAM": "value"}
    assert run.status == "waitingToRun"
    assert PASSWORD not in repr(vars(sim.state))


def test_it_refreshes_everything_when_no_job_or_selector_is_given(sim):
    response = start(sim, {"runDetails": {"environmentID": "env-1"}})

    assert response.status_code == 200
    assert sim.state.get_run(response.json()["runCounter"]).job_id is None


def test_it_numbers_runs_in_one_increasing_sequence_across_environments(sim):
    counters = [start(sim, run_body(env)).json()["runCounter"] for env in ("a", "b", "a", "c")]

    assert counters == [1, 2, 3, 4]


def test_it_accepts_oauth_with_only_the_auth_type(sim):
    body = {**run_body(), "userCredentials": {"snowflakeAuthType": "OAuth"}}

    assert start(sim, body).status_code == 200


@pytest.mark.parametrize("kind", ["plain", "encrypted"])
def test_it_accepts_a_real_pem_key_pair_with_real_newlines(sim, pems, kind):
    passphrase = PASSPHRASE if kind == "encrypted" else None

    response = start(sim, key_pair_body(pems[kind], passphrase))

    assert response.status_code == 200, response.text
    [received] = requests.get(url(sim, "/_sim/requests"), timeout=5).json()
    assert received["keyPairKeyLoaded"] is True
    assert received["keyPairKeyEncrypted"] is (kind == "encrypted")
    assert received["body"]["userCredentials"]["snowflakeKeyPairKey"] == "***"
    assert "PRIVATE KEY" not in repr(vars(sim.state))


def test_it_keeps_received_bodies_with_secrets_masked(sim):
    start(sim, basic_body())

    [received] = requests.get(url(sim, "/_sim/requests"), timeout=5).json()

    credentials = received["body"]["userCredentials"]
    assert credentials["snowflakePassword"] == "***"
    assert credentials["snowflakeUsername"] == "SVC_USER"  # a name, not a secret
    assert (received["status"], received["runCounter"], received["authType"]) == (200, 1, "Basic")
    assert PASSWORD not in repr(sim.state.requests_snapshot())


# --- startRun: validation, one case per rule ---------------------------------------------------


def _with(details=None, credentials=None, **top) -> dict[str, Any]:
    body: dict[str, Any] = {"runDetails": {"environmentID": "env-1", **(details or {})}}
    if credentials is not None:
        body["userCredentials"] = credentials
    body.update(top)
    return body


BASIC = {"snowflakeUsername": "U", "snowflakePassword": PASSWORD}

INVALID_BODIES = {
    "body-not-object": ([{"runDetails": {}}], "must be a JSON object"),
    "unknown-top-level": (
        _with(parameterOverride={}),
        "unknown top-level field(s): parameterOverride",
    ),
    "flat-body": ({"environmentID": "env-1"}, "unknown top-level"),
    "runDetails-missing": ({"parameters": {}}, "runDetails is required"),
    "runDetails-not-object": ({"runDetails": "env-1"}, "runDetails is required"),
    "environmentID-missing": ({"runDetails": {"jobID": "3"}}, "runDetails.environmentID"),
    "environmentID-empty": ({"runDetails": {"environmentID": ""}}, "runDetails.environmentID"),
    "environmentID-number": ({"runDetails": {"environmentID": 4}}, "runDetails.environmentID"),
    "jobID-number": (_with({"jobID": 3}), "runDetails.jobID must be a string"),
    "include-null": (_with({"includeNodesSelector": None}), "runDetails.includeNodesSelector"),
    "exclude-list": (_with({"excludeNodesSelector": ["a"]}), "runDetails.excludeNodesSelector"),
    "parallelism-zero": (_with({"parallelism": 0}), "runDetails.parallelism"),
    "parallelism-bool": (_with({"parallelism": True}), "runDetails.parallelism"),
    "parallelism-string": (_with({"parallelism": "4"}), "runDetails.parallelism"),
    "force-not-bool": (_with({"forceIgnoreWorkspaceStatus": "yes"}), "forceIgnoreWorkspaceStatus"),
    "unknown-runDetails-key": (_with({"jobId": "3"}), "unknown runDetails field(s): jobId"),
    "credentials-not-object": (_with(credentials="Basic"), "userCredentials must be an object"),
    "credentials-unknown-key": (
        _with(credentials={**BASIC, "token": "x"}),
        "unknown userCredentials",
    ),
    "credential-not-string": (_with(credentials={**BASIC, "snowflakeRole": 5}), "snowflakeRole"),
    "auth-type-unknown": (
        _with(credentials={**BASIC, "snowflakeAuthType": "Cloud"}),
        "snowflakeAuthType",
    ),
    "basic-no-username": (
        _with(credentials={"snowflakeAuthType": "Basic", "snowflakePassword": PASSWORD}),
        "userCredentials.snowflakeUsername is required for Basic",
    ),
    "default-basic-no-password": (
        _with(credentials={"snowflakeUsername": "U"}),
        "userCredentials.snowflakePassword is required for Basic",
    ),
    "basic-with-key": (
        _with(credentials={**BASIC, "snowflakeKeyPairKey": "k"}),
        "snowflakeKeyPairKey does not belong with Basic",
    ),
    "keypair-no-username": (
        _with(credentials={"snowflakeAuthType": "KeyPair", "snowflakeKeyPairKey": "k"}),
        "userCredentials.snowflakeUsername is required for KeyPair",
    ),
    "keypair-no-key": (
        _with(credentials={"snowflakeAuthType": "KeyPair", "snowflakeUsername": "U"}),
        "userCredentials.snowflakeKeyPairKey is required for KeyPair",
    ),
    "keypair-with-password": (
        _with(credentials={**BASIC, "snowflakeAuthType": "KeyPair", "snowflakeKeyPairKey": "k"}),
        "snowflakePassword does not belong with KeyPair",
    ),
    "keypair-not-pem": (
        _with(
            credentials={
                "snowflakeAuthType": "KeyPair",
                "snowflakeUsername": "U",
                "snowflakeKeyPairKey": "not a key",
            }
        ),
        "could not be loaded as a PEM private key",
    ),
    "oauth-with-username": (
        _with(credentials={"snowflakeAuthType": "OAuth", "snowflakeUsername": "U"}),
        "must carry only snowflakeAuthType",
    ),
    "parameters-json-string": (_with(parameters='{"A": "1"}'), "parameters must be a JSON object"),
    "parameter-not-string": (_with(parameters={"A": 1}), "parameters.A must be a string"),
}


@pytest.mark.parametrize("body,expected", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_it_rejects_a_start_run_body_naming_the_field(sim, openapi, body, expected):
    response = start(sim, body)

    assert response.status_code == 400
    assert expected in error_string(response)
    assert response.json()["error"]["errorDetail"] == error_string(response)
    assert PASSWORD not in response.text
    openapi(response.json(), "/scheduler/startRun", "post", "400")
    assert sim.state.runs == {}


def test_it_rejects_a_body_that_is_not_json(sim):
    response = requests.post(
        url(sim, "/scheduler/startRun"), data="{runDetails", headers=AUTH, timeout=5
    )

    assert response.status_code == 400
    assert "valid JSON" in error_string(response)


KEY_PROBLEMS = {
    # (key kind, passphrase, how the PEM is mangled, expected message)
    "literal-backslash-n": ("plain", None, True, "literal \\n text"),
    "encrypted-without-pass": ("encrypted", None, False, "is encrypted but snowflakeKeyPairPass"),
    "encrypted-wrong-pass": ("encrypted", "wrong passphrase", False, "wrong snowflakeKeyPairPass"),
    "pass-for-plain-key": ("plain", PASSPHRASE, False, "the key is not encrypted"),
    "empty-pass": ("encrypted", "", False, "snowflakeKeyPairPass must be omitted when empty"),
}


@pytest.mark.parametrize(
    "kind,passphrase,escaped,expected", KEY_PROBLEMS.values(), ids=KEY_PROBLEMS.keys()
)
def test_it_rejects_a_key_pair_key_it_cannot_load(sim, pems, kind, passphrase, escaped, expected):
    # escaped: the newlines were written as the two characters backslash and n, as happens
    # when a PEM is pasted through a form that does not keep line breaks.
    key = pems[kind].replace("\n", "\\n") if escaped else pems[kind]

    response = start(sim, key_pair_body(key, passphrase))

    assert response.status_code == 400
    assert expected in error_string(response)
    assert "PRIVATE KEY" not in response.text
    assert not passphrase or passphrase not in response.text


# --- misbehaviour -----------------------------------------------------------------------------

ERROR_MODES = {
    "http429": (429, "429: Too many requests, please retry later."),
    "http400": (400, "400: Environment is not deployed"),
    "unauthorized": (401, AUTH_ERROR),
}


@pytest.mark.parametrize("mode", ERROR_MODES)
def test_it_answers_error_modes_with_the_envelope_and_starts_nothing(sim, mode):
    status, message = ERROR_MODES[mode]

    response = start(sim, basic_body(environment_id=f"fail-{mode}"))

    assert response.status_code == status
    assert response.json() == {"error": {"errorString": message, "errorDetail": message}}
    assert sim.state.runs == {}
    if mode == "http429":
        assert response.headers["Retry-After"] == "7"


def test_it_answers_http500_with_an_html_page(sim):
    response = start(sim, run_body("fail-http500"))

    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Internal Server Error" in response.text
    assert sim.state.runs == {}


def test_it_answers_badjson_with_truncated_json_after_starting_the_run(sim):
    response = start(sim, run_body("fail-badjson"))

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.JSONDecodeError):
        response.json()
    assert list(sim.state.runs) == [1]


def test_it_answers_nocounter_with_an_empty_object_after_starting_the_run(sim):
    response = start(sim, run_body("fail-nocounter"))

    assert (response.status_code, response.json()) == (200, {})
    assert list(sim.state.runs) == [1]


def test_it_hangs_on_timeout_but_still_starts_the_run(sim):
    with pytest.raises(requests.exceptions.ReadTimeout):
        start(sim, run_body("fail-timeout"), timeout=(2, 0.3))

    [summary] = list_runs(sim, environmentID="fail-timeout").json()["data"]
    assert summary["id"] == 1


def test_it_still_validates_the_body_for_a_misbehaving_environment(sim):
    response = start(sim, run_body("fail-http500", parallelism=0))

    assert response.status_code == 400


def test_it_applies_behaviours_given_at_start(sim):
    assert start(sim, run_body("env-boot-500")).status_code == 500


def test_it_changes_behaviour_at_runtime_over_http(sim):
    def set_mode(environment_id: str, mode: str) -> requests.Response:
        body = {"environmentID": environment_id, "mode": mode}
        return requests.post(url(sim, "/_sim/behaviours"), json=body, timeout=5)

    assert set_mode("env-1", "http400").status_code == 200
    assert start(sim, run_body("env-1")).status_code == 400
    assert start(sim, run_body("env-2")).status_code == 200  # others unaffected

    set_mode("env-1", "")
    set_mode("fail-http500", "normal")
    assert start(sim, run_body("env-1")).status_code == 200
    assert start(sim, run_body("fail-http500")).status_code == 200
    assert set_mode("env-1", "explode").status_code == 400


def test_it_forgets_runtime_behaviours_runs_and_counters_on_reset(sim):
    requests.post(
        url(sim, "/_sim/behaviours"), json={"environmentID": "e", "mode": "http429"}, timeout=5
    )
    start(sim, run_body("env-1"))

    requests.post(url(sim, "/_sim/reset"), timeout=5)

    assert start(sim, run_body("e")).json() == {"runCounter": 1}
    assert requests.get(url(sim, "/_sim/calls"), timeout=5).json() == {
        "POST /scheduler/startRun": 1
    }
    assert start(sim, run_body("env-boot-500")).status_code == 500  # start-up ones stay


# --- runStatus and the runs list ---------------------------------------------------------------


def test_it_reports_run_status_with_a_link_to_itself(sim, openapi):
    start(sim, run_body())

    response = requests.get(
        url(sim, "/scheduler/runStatus"), params={"runCounter": 1}, headers=AUTH, timeout=5
    )

    assert response.json() == {
        "runStatus": "waitingToRun",
        "runType": "refresh",
        "runLink": url(sim, "/runs/1"),
    }
    openapi(response.json(), "/scheduler/runStatus", "get")


@pytest.mark.parametrize(
    "run_counter,status", [("99", 404), ("", 400), ("abc", 400)], ids=["unknown", "empty", "text"]
)
def test_it_refuses_run_status_for_a_bad_or_unknown_counter(sim, run_counter, status):
    response = requests.get(
        url(sim, "/scheduler/runStatus"),
        params={"runCounter": run_counter},
        headers=AUTH,
        timeout=5,
    )

    assert response.status_code == status
    assert "error" in response.json()


def test_it_lists_runs_newest_first_in_the_documented_shape(sim, openapi):
    for env in ("a", "b", "a"):
        start(sim, run_body(env))

    body = list_runs(sim).json()

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


def test_it_filters_limits_and_orders_the_runs_list(sim):
    for env in ("a", "b", "a", "a"):
        start(sim, run_body(env))

    assert [r["id"] for r in list_runs(sim, environmentID="a", limit=2).json()["data"]] == [4, 3]
    assert [r["id"] for r in list_runs(sim, orderByDirection="asc", limit=1).json()["data"]] == [1]
    assert [r["id"] for r in list_runs(sim, environmentID="b").json()["data"]] == [2]
    assert list_runs(sim, limit=0).json()["data"] == []


@pytest.mark.parametrize(
    "params", [{"limit": 1001}, {"limit": -1}, {"limit": "x"}, {"orderByDirection": "up"}]
)
def test_it_refuses_a_runs_list_with_bad_parameters(sim, params):
    response = list_runs(sim, **params)

    assert response.status_code == 400
    assert "error" in response.json()


def test_it_checks_that_the_schema_validator_resolves_refs(openapi):
    # Guards the guard: a wrong runs list must fail, or every schema check above is hollow.
    bad = {"data": [{"id": "1", "runType": "refresh", "runStatus": "done"}], "limit": 1}

    with pytest.raises(jsonschema.ValidationError):
        openapi(bad, "/api/v1/runs", "get")


# --- progress over time ------------------------------------------------------------------------


def test_a_run_waits_then_runs_then_completes_as_the_clock_moves(sim, openapi):
    run_id = started(sim)
    seen = []
    for seconds in (0, 0.899, 0.001, 5.099, 0.001):  # to 0.899, 0.9, 5.999, 6.0
        sim.state.advance(seconds)
        answer = get(sim, "/scheduler/runStatus", runCounter=run_id).json()
        openapi(answer, "/scheduler/runStatus", "get")
        seen.append(answer["runStatus"])

    assert seen == ["waitingToRun", "waitingToRun", "running", "running", "completed"]
    info = get(sim, f"/api/v1/runs/{run_id}").json()
    assert (info["runStartTime"], info["runEndTime"]) == (T0_ISO, "2026-01-01T00:00:06.000Z")
    assert sim.state.get_run(run_id).status == "completed"


def test_a_run_has_no_end_time_until_it_ends(sim):
    run_id = started(sim)
    sim.state.advance(3)

    info = get(sim, f"/api/v1/runs/{run_id}").json()

    assert info["runStatus"] == "running"
    assert "runEndTime" not in info


def test_results_show_the_nodes_started_so_far_with_one_running(sim, component):
    run_id = started(sim)
    assert results_of(sim, run_id) == []  # still waiting

    sim.state.advance(0.9 + 5.1 * 2.5 / 5)  # halfway through the third node
    nodes = results_of(sim, run_id)

    assert [n["name"] for n in nodes] == list(NODE_NAMES[:3])
    assert [n["isRunning"] for n in nodes] == [False, False, True]
    running = nodes[-1]["queryResults"][-1]
    assert (running["isRunning"], running["status"], "endTime" in running) == (
        True,
        "Running",
        False,
    )
    for node in nodes:
        component(node, "RunResult")

    sim.state.advance(6)
    nodes = results_of(sim, run_id)
    assert [n["name"] for n in nodes] == list(NODE_NAMES)
    assert not any(n["isRunning"] for n in nodes)
    assert all(q["success"] for n in nodes for q in n["queryResults"])


def test_results_are_in_the_documented_shape(sim, openapi, component):
    run_id = started(sim)
    sim.state.advance(6)

    body = get(sim, f"/api/v1/runs/{run_id}/results").json()

    openapi(body, "/api/v1/runs/{runID}/results", "get")
    node = body["data"][0]
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


def test_a_node_id_is_stable_per_environment(sim):
    first, second, other = started(sim), started(sim), started(sim, "env-2")
    sim.state.advance(7)

    ids = [results_of(sim, run)[0]["nodeID"] for run in (first, second, other)]

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
def test_the_final_state_follows_the_outcome_hints(sim, openapi, environment_id, details, outcome):
    run_id = started(sim, environment_id, **details)
    sim.state.advance(6)

    info = get(sim, f"/api/v1/runs/{run_id}").json()
    nodes = results_of(sim, run_id)

    openapi(info, "/api/v1/runs/{runID}", "get")
    assert info["runStatus"] == outcome
    assert [n["name"] for n in nodes] == list(NODE_NAMES)
    failed = [n["name"] for n in nodes if n["runState"] == "failed"]
    if outcome == "failed":
        assert failed == ["FCT_ORDERS", "FCT_REVENUE"]
        assert info["runFailureReason"] == "2 of 5 nodes failed: FCT_ORDERS, FCT_REVENUE"
    else:
        assert failed == []
        assert "runFailureReason" not in info


def test_a_failed_node_carries_the_snowflake_error_and_its_sql(sim, component):
    run_id = started(sim, "env-fails")
    sim.state.advance(6)

    by_name = {n["name"]: n for n in results_of(sim, run_id)}

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


def test_run_info_echoes_the_details_without_secrets(sim, openapi):
    body = basic_body(
        jobID="7",
        includeNodesSelector="{ location: MART }",
        parallelism=4,
        forceIgnoreWorkspaceStatus=True,
    )
    body["parameters"] = {"TARGET_DATE": "2026-01-01"}
    run_id = start(sim, body).json()["runCounter"]

    response = get(sim, f"/api/v1/runs/{run_id}")

    info = response.json()
    openapi(info, "/api/v1/runs/{runID}", "get")
    assert info["runDetails"] == {
        "environmentID": "env-1",
        "jobID": 7,  # an integer in RunInfo
        "includeNodesSelector": "{ location: MART }",
        "parallelism": 4,
        "forceIgnoreEnvironmentStatus": True,
        "canceled": False,
        "nodesInRun": 5,
    }
    assert info["runTimeParameters"] == {"TARGET_DATE": "2026-01-01"}
    assert info["userCredentials"]["snowflakeUsername"] == "SVC_USER"
    assert info["userCredentials"]["snowflakeAuthType"] == "Basic"
    assert PASSWORD not in response.text
    assert "reRunID" not in info


@pytest.mark.parametrize("suffix", ["", "/results"])
def test_an_unknown_run_is_404_and_a_non_number_400(sim, openapi, suffix):
    missing = get(sim, f"/api/v1/runs/99{suffix}")
    text = get(sim, f"/api/v1/runs/abc{suffix}")

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


def test_the_clock_can_be_advanced_over_http(sim):
    run_id = started(sim)

    response = requests.post(url(sim, "/_sim/advance"), json={"seconds": 6}, timeout=5)

    assert response.json() == {"now": "2026-01-01T00:00:06.000Z"}
    assert status_of(sim, run_id) == "completed"
    refused = requests.post(url(sim, "/_sim/advance"), json={"seconds": -1}, timeout=5)
    assert refused.status_code == 400


# --- cancel ----------------------------------------------------------------------------------


def cancel_body(run_id: Any, environment_id: Any = "env-1", **extra) -> dict[str, Any]:
    return {"runID": run_id, "orgID": "org-1", "environmentID": environment_id, **extra}


@pytest.mark.parametrize("seconds", [0, 3], ids=["waitingToRun", "running"])
def test_it_cancels_a_waiting_or_running_run(sim, openapi, seconds):
    run_id = started(sim)
    sim.state.advance(seconds)

    response = cancel(sim, cancel_body(run_id))

    assert (response.status_code, response.content) == (204, b"")
    sim.state.advance(10)  # it stays canceled and never finishes
    info = get(sim, f"/api/v1/runs/{run_id}").json()
    openapi(info, "/api/v1/runs/{runID}", "get")
    assert (info["runStatus"], info["runDetails"]["canceled"]) == ("canceled", True)
    assert info["runEndTime"] == f"2026-01-01T00:00:0{seconds}.000Z"
    assert status_of(sim, run_id) == "canceled"
    assert [r["id"] for r in list_runs(sim, runStatus="canceled").json()["data"]] == [run_id]


def test_a_canceled_run_shows_the_interrupted_node(sim, openapi):
    run_id = started(sim)
    sim.state.advance(0.9 + 5.1 * 1.5 / 5)  # halfway through the second node
    cancel(sim, cancel_body(run_id))
    sim.state.advance(10)

    body = get(sim, f"/api/v1/runs/{run_id}/results").json()

    openapi(body, "/api/v1/runs/{runID}/results", "get")
    assert [(n["name"], n["runState"]) for n in body["data"]] == [
        ("STG_ORDERS", "complete"),
        ("STG_CUSTOMERS", "canceled"),
    ]
    interrupted = body["data"][1]["queryResults"][-1]
    assert (interrupted["isRunning"], interrupted["success"]) == (False, False)
    assert interrupted["error"]["errorString"] == "SQL execution canceled"


def test_it_refuses_to_cancel_a_finished_run(sim, openapi):
    done, failed = started(sim), started(sim, "env-fails")  # at 0 and 1 ms
    sim.state.advance(7)

    for run_id, environment_id, status in (
        (done, "env-1", "completed"),
        (failed, "env-fails", "failed"),
    ):
        response = cancel(sim, cancel_body(run_id, environment_id))
        assert response.status_code == 400
        assert f"run {run_id} is {status}" in error_string(response)
        openapi(response.json(), "/scheduler/cancelRun", "post", "400")
    assert status_of(sim, done) == "completed"


def test_it_refuses_a_second_cancel(sim):
    run_id = started(sim)
    assert cancel(sim, cancel_body(run_id)).status_code == 204

    again = cancel(sim, cancel_body(run_id))

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
def test_it_rejects_a_bad_cancel(sim, body, expected):
    started(sim)

    response = cancel(sim, body)

    assert response.status_code == 400
    assert expected in error_string(response)
    assert status_of(sim, 1) == "waitingToRun"


# --- rerun -----------------------------------------------------------------------------------


def test_a_rerun_of_a_failed_run_reruns_only_the_failed_nodes_and_completes(sim, openapi):
    original = started(sim, "env-fails", jobID="4", parallelism=2)
    sim.state.advance(6)

    response = rerun(sim, str(original))

    assert response.status_code == 200
    openapi(response.json(), "/scheduler/rerun", "post")
    new = response.json()["runCounter"]
    assert new == original + 1
    assert status_of(sim, new) == "waitingToRun"
    sim.state.advance(6)
    info = get(sim, f"/api/v1/runs/{new}").json()
    openapi(info, "/api/v1/runs/{runID}", "get")
    assert (info["runStatus"], info["reRunID"], info["environmentID"]) == (
        "completed",
        str(original),
        "env-fails",
    )
    assert (info["runDetails"]["jobID"], info["runDetails"]["parallelism"]) == (4, 2)
    assert info["runDetails"]["nodesInRun"] == 2
    nodes = results_of(sim, new)
    assert [n["name"] for n in nodes] == ["FCT_ORDERS", "FCT_REVENUE"]
    assert all(q["success"] and "error" not in q for n in nodes for q in n["queryResults"])
    [summary] = list_runs(sim, limit=1).json()["data"]
    assert summary["reRunID"] == str(original)
    assert status_of(sim, original) == "failed"  # the original is unchanged


def test_a_rerun_keeps_the_original_parameters_unless_new_ones_are_sent(sim):
    body = basic_body("env-fails")
    body["parameters"] = {"A": "1"}
    original = start(sim, body).json()["runCounter"]
    sim.state.advance(6)

    kept = rerun(sim, str(original)).json()["runCounter"]
    replaced = rerun(sim, str(original), parameters={"B": "2"}).json()["runCounter"]

    assert sim.state.get_run(kept).parameters == {"A": "1"}
    assert sim.state.get_run(replaced).parameters == {"B": "2"}


def test_it_refuses_to_rerun_a_run_that_did_not_fail(sim, openapi):
    running_failer, completed = started(sim, "env-fails"), started(sim)
    sim.state.advance(3)
    assert rerun(sim, str(running_failer)).status_code == 400  # not failed yet
    sim.state.advance(3)
    rerun_id = rerun(sim, str(running_failer)).json()["runCounter"]
    sim.state.advance(6)

    for run_id, status in ((completed, "completed"), (rerun_id, "completed"), (99, None)):
        response = rerun(sim, str(run_id))
        assert response.status_code == 400
        openapi(response.json(), "/scheduler/rerun", "post", "400")
        expected = f"run {run_id} is {status}" if status else f"run {run_id} not found"
        assert expected in error_string(response)
    assert len(sim.state.runs) == 3


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
def test_it_rejects_a_bad_rerun_body(sim, change, expected):
    started(sim, "env-fails")
    sim.state.advance(6)
    body = {"runDetails": {"runID": "1"}, "userCredentials": basic_body()["userCredentials"]}
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}

    response = requests.post(url(sim, "/scheduler/rerun"), json=body, headers=AUTH, timeout=5)

    assert response.status_code == 400
    assert expected in error_string(response)
    assert len(sim.state.runs) == 1


def test_a_rerun_is_recorded_with_secrets_masked_and_follows_the_environment_mode(sim):
    started(sim, "env-fails")
    sim.state.advance(6)
    sim.state.set_behaviour("env-fails", "http429")

    response = rerun(sim, "1")

    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    received = sim.state.requests_snapshot()[-1]
    assert (received["path"], received["status"], received["mode"]) == (
        "/scheduler/rerun",
        429,
        "http429",
    )
    assert received["body"]["userCredentials"]["snowflakePassword"] == "***"
    assert len(sim.state.runs) == 1


# --- the runs list ---------------------------------------------------------------------------


def all_pages(sim: SimulatorServer, **params) -> tuple[list[int], int]:
    """Follow ``next`` from page to page: (run IDs in order, pages fetched)."""
    ids: list[int] = []
    pages = 0
    cursor = None
    while True:
        query = dict(params, **({"startingFrom": cursor} if cursor is not None else {}))
        body = list_runs(sim, **query).json()
        pages += 1
        ids += [run["id"] for run in body["data"]]
        cursor = body.get("next")
        if cursor is None:
            return ids, pages
        assert pages < 100


@pytest.mark.parametrize("order_by", ["id", "runStartTime"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_it_pages_through_runs_with_next_without_gaps_or_repeats(sim, order_by, direction):
    sim.state.create_runs(23, ["env-a", "env-b"])

    ids, pages = all_pages(sim, orderBy=order_by, orderByDirection=direction, limit=5)

    expected = list(range(1, 24))
    assert ids == (expected if direction == "asc" else expected[::-1])
    assert pages == 5
    env_a, _ = all_pages(
        sim, orderBy=order_by, orderByDirection=direction, limit=4, environmentID="env-a"
    )
    assert sorted(env_a) == list(range(1, 24, 2))


def test_the_next_cursor_is_typed_by_order_by(sim):
    sim.state.create_runs(3, ["env-1"])

    by_id = list_runs(sim, limit=1).json()
    by_start = list_runs(sim, limit=1, orderBy="runStartTime", orderByDirection="asc").json()

    assert by_id["next"] == 3
    assert by_start["next"] == T0_ISO  # each later run starts at least 1 ms later
    assert "next" not in list_runs(sim, limit=3).json()
    assert "next" not in list_runs(sim, limit=0).json()


def test_it_orders_by_end_time_listing_only_ended_runs(sim):
    first, second, third, fourth = (started(sim) for _ in range(4))
    sim.state.advance(1)
    cancel(sim, cancel_body(third))  # ends at 1 s
    sim.state.advance(2)
    cancel(sim, cancel_body(second))  # ends at 3 s
    sim.state.advance(3.005)  # first (6.000 s) and fourth (6.003 s) have ended too; 5th not
    fifth = started(sim)

    ids, _ = all_pages(sim, orderBy="runEndTime", orderByDirection="asc", limit=1)
    body = list_runs(sim, orderBy="runEndTime", limit=2).json()

    assert ids == [third, second, first, fourth]
    assert fifth not in ids
    assert [r["id"] for r in body["data"]] == [fourth, first]
    assert body["next"] == "2026-01-01T00:00:06.000Z"


def test_it_filters_by_status_and_type(sim):
    done, failed = started(sim), started(sim, "env-fails")
    sim.state.advance(7)
    waiting = started(sim)

    def ids(**params) -> list[int]:
        return [r["id"] for r in list_runs(sim, **params).json()["data"]]

    assert ids(runStatus="completed") == [done]
    assert ids(runStatus="failed") == [failed]
    assert ids(runStatus="waitingToRun") == [waiting]
    assert ids(runType="deploy") == []
    assert ids(runType="refresh") == [waiting, failed, done]


def test_it_lists_run_info_objects_with_detail(sim, openapi):
    started(sim, "env-fails", jobID="2")
    sim.state.advance(6)

    body = list_runs(sim, detail="true").json()

    openapi(body, "/api/v1/runs", "get")
    [info] = body["data"]
    assert info["runDetails"]["jobID"] == 2
    assert info["runFailureReason"].startswith("2 of 5 nodes failed")
    assert "runDetails" not in list_runs(sim).json()["data"][0]


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
def test_it_refuses_bad_list_filters_and_cursors(sim, params):
    response = list_runs(sim, **params)

    assert response.status_code == 400
    assert "errorString" in response.json()["error"]


# --- bulk creation -----------------------------------------------------------------------------


def test_it_creates_a_thousand_runs_at_once_and_lists_them_quickly(sim):
    response = requests.post(
        url(sim, "/_sim/runs"),
        json={"count": 1000, "environmentIDs": ["e1", "e2"], "jobID": "1"},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.json() == {"runCounters": list(range(1, 1001))}
    began = time.monotonic()
    ids, pages = all_pages(
        sim, orderBy="runStartTime", orderByDirection="asc", limit=300, detail="true"
    )
    assert time.monotonic() - began < 3  # a few ms per page; quadratic work would show
    assert (ids, pages) == (list(range(1, 1001)), 4)
    e1 = list_runs(sim, environmentID="e1", limit=1000).json()["data"]
    assert len(e1) == 500
    assert sim.state.get_run(1000).job_id == "1"
    assert sim.state.calls_snapshot() == {"GET /api/v1/runs": 5}  # /_sim calls are not counted


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
def test_it_refuses_a_bad_bulk_creation(sim, body):
    response = requests.post(url(sim, "/_sim/runs"), json=body, timeout=5)

    assert response.status_code == 400
    assert sim.state.runs == {}


# --- rate limiting reads -------------------------------------------------------------------------


def test_http429_reads_refuses_every_read_for_the_environment(sim):
    run_id = started(sim, "fail-http429-reads")  # starting still works
    other = started(sim, "env-1")

    for path, params in (
        ("/scheduler/runStatus", {"runCounter": run_id}),
        (f"/api/v1/runs/{run_id}", {}),
        (f"/api/v1/runs/{run_id}/results", {}),
        ("/api/v1/runs", {"environmentID": "fail-http429-reads"}),
    ):
        response = get(sim, path, **params)
        assert response.status_code == 429, path
        assert response.headers["Retry-After"] == "1"
        assert error_string(response) == "429: Too many requests, please retry later."
    assert get(sim, f"/api/v1/runs/{other}").status_code == 200
    assert list_runs(sim).status_code == 200  # an unfiltered list names no environment


def test_http429_reads_alternate_refuses_every_other_read(sim):
    sim.state.set_behaviour("env-1", "http429-reads-alternate")
    run_id = started(sim)

    codes = [get(sim, f"/api/v1/runs/{run_id}").status_code for _ in range(4)]

    assert codes == [429, 200, 429, 200]
    assert sim.state.calls_snapshot()["GET /api/v1/runs/{id}"] == 4


# --- routing and call counting ------------------------------------------------------------------


def test_it_counts_calls_per_method_and_path(sim):
    start(sim, run_body())
    start(sim, run_body())
    list_runs(sim, limit=1)

    calls = requests.get(url(sim, "/_sim/calls"), timeout=5).json()

    assert calls == {"POST /scheduler/startRun": 2, "GET /api/v1/runs": 1}


def test_it_counts_run_paths_under_their_templates_and_a_total(sim):
    first, second = started(sim), started(sim)
    for run_id in (first, second, 99):
        get(sim, f"/api/v1/runs/{run_id}")
    get(sim, f"/api/v1/runs/{first}/results")
    get(sim, f"/api/v1/runs/{second}/results")
    cancel(sim, cancel_body(first))

    calls = requests.get(url(sim, "/_sim/calls"), timeout=5).json()
    total = requests.get(url(sim, "/_sim/calls/total"), timeout=5).json()

    assert calls == {
        "POST /scheduler/startRun": 2,
        "GET /api/v1/runs/{id}": 3,
        "GET /api/v1/runs/{id}/results": 2,
        "POST /scheduler/cancelRun": 1,
    }
    assert total == {"total": 8} and sim.state.total_calls() == 8
    assert calls == sim.state.calls_snapshot()


def test_it_answers_unknown_paths_with_404_and_wrong_methods_with_405(sim):
    missing = requests.get(url(sim, "/api/v1/nothing"), headers=AUTH, timeout=5)
    wrong = requests.get(url(sim, "/scheduler/startRun"), headers=AUTH, timeout=5)

    assert missing.status_code == 404
    assert "errorString" in missing.json()["error"]
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"


def test_it_logs_one_line_per_request_without_token_or_body(sim, caplog):
    caplog.set_level("INFO", logger="coalesce_simulator")

    start(sim, basic_body())

    assert [r.getMessage() for r in caplog.records] == ["POST /scheduler/startRun -> 200"]
    assert TOKEN not in caplog.text
    assert PASSWORD not in caplog.text


# --- python -m coalesce_simulator -----------------------------------------------------------


def test_it_serves_from_the_command_line(monkeypatch, capsys):
    started = {}

    def fake_serve_forever(self, poll_interval=0.5):
        started["state"] = self.state
        raise KeyboardInterrupt  # what Ctrl-C does

    monkeypatch.setattr(SimulatorServer, "serve_forever", fake_serve_forever)
    monkeypatch.setenv("COALESCE_SIMULATOR_TOKEN", "env-token")

    main(["--port", "0", "--misbehave", "e1=http429"])

    state = started["state"]
    assert capsys.readouterr().out.strip() == (
        f"Coalesce simulator listening on {state.base_url} (token: env-token)"
    )
    assert state.behaviour_for("e1") == "http429"
    assert state.closing.is_set()  # the server was closed on the way out


def test_it_refuses_a_malformed_misbehave_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "0", "--misbehave", "e1=explode"])

    assert exit_info.value.code == 2
    assert "ENV_ID=MODE" in capsys.readouterr().err


def test_the_command_line_passes_the_run_duration(monkeypatch, capsys):
    started_with = {}

    def fake_serve_forever(self, poll_interval=0.5):
        started_with["state"] = self.state
        raise KeyboardInterrupt

    monkeypatch.setattr(SimulatorServer, "serve_forever", fake_serve_forever)

    main(["--port", "0", "--run-seconds", "0.5"])

    assert started_with["state"].run_seconds == 0.5
    with pytest.raises(SystemExit):
        main(["--port", "0", "--run-seconds", "-1"])
    assert "--run-seconds" in capsys.readouterr().err
