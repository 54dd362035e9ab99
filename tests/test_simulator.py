"""The local Coalesce simulator, spoken to over real HTTP like the dashboard and browser tests do.

Success answers are checked against the response schemas in Coalesce's own 2024 OpenAPI file
(tests/data/coalesce-openapi-2024.yaml), so the simulator cannot drift from the real shapes.
"""

from __future__ import annotations

import io
import threading
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
from django.core.management import CommandError, call_command
from referencing import Registry
from referencing.jsonschema import DRAFT7

from runs.simulator import AUTH_ERROR, SimulatorServer, make_server

TOKEN = "test-sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC_URI = "urn:coalesce-openapi-2024"
SPEC_PATH = Path(__file__).parent / "data" / "coalesce-openapi-2024.yaml"
PASSPHRASE = "correct horse battery"
PASSWORD = "basic-password-s3cret"


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A simulator on a free port, served from a thread, closed after the test."""
    server = make_server(token=TOKEN, behaviours={"env-boot-500": "http500"}, hang_seconds=1.5)
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


def run_body(environment_id: str = "env-1", **details) -> dict[str, Any]:
    return {"runDetails": {"environmentID": environment_id, **details}}


def basic_body(**details) -> dict[str, Any]:
    return {
        **run_body(**details),
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
def openapi():
    """``validate(instance, path, method, status)`` against that response's OpenAPI schema."""
    spec = yaml.safe_load(SPEC_PATH.read_text())
    registry = Registry().with_resource(SPEC_URI, DRAFT7.create_resource(spec))

    def validate(instance: Any, path: str, method: str, status: str = "200") -> None:
        pointer = "/".join(
            ["paths", path.replace("/", "~1"), method, "responses", status, "content"]
            + ["application~1json", "schema"]
        )
        schema = {"$ref": f"{SPEC_URI}#/{pointer}"}
        jsonschema.Draft7Validator(schema, registry=registry).validate(instance)

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
    [("post", "/scheduler/startRun"), ("get", "/api/v1/runs"), ("get", "/scheduler/runStatus")],
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


# --- routing and call counting ------------------------------------------------------------------


def test_it_counts_calls_per_method_and_path(sim):
    start(sim, run_body())
    start(sim, run_body())
    list_runs(sim, limit=1)

    calls = requests.get(url(sim, "/_sim/calls"), timeout=5).json()

    assert calls == {"POST /scheduler/startRun": 2, "GET /api/v1/runs": 1}


def test_it_answers_unknown_paths_with_404_and_wrong_methods_with_405(sim):
    missing = requests.get(url(sim, "/api/v1/nothing"), headers=AUTH, timeout=5)
    wrong = requests.get(url(sim, "/scheduler/startRun"), headers=AUTH, timeout=5)

    assert missing.status_code == 404
    assert "errorString" in missing.json()["error"]
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"


def test_it_logs_one_line_per_request_without_token_or_body(sim, caplog):
    caplog.set_level("INFO", logger="runs.simulator")

    start(sim, basic_body())

    assert [r.getMessage() for r in caplog.records] == ["POST /scheduler/startRun -> 200"]
    assert TOKEN not in caplog.text
    assert PASSWORD not in caplog.text


# --- the management command --------------------------------------------------------------------


def test_it_serves_from_the_management_command(monkeypatch):
    started = {}

    def fake_serve_forever(self, poll_interval=0.5):
        started["state"] = self.state
        raise KeyboardInterrupt  # what Ctrl-C does

    monkeypatch.setattr(SimulatorServer, "serve_forever", fake_serve_forever)
    monkeypatch.setenv("COALESCE_SIMULATOR_TOKEN", "env-token")
    out = io.StringIO()

    call_command("coalesce_simulator", "--port", "0", "--misbehave", "e1=http429", stdout=out)

    state = started["state"]
    assert out.getvalue().strip() == (
        f"Coalesce simulator listening on {state.base_url} (token: env-token)"
    )
    assert state.behaviour_for("e1") == "http429"
    assert state.closing.is_set()  # the server was closed on the way out


def test_it_refuses_a_malformed_misbehave_option():
    with pytest.raises(CommandError, match="ENV_ID=MODE"):
        call_command("coalesce_simulator", "--port", "0", "--misbehave", "e1=explode")
