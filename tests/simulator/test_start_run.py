"""POST /scheduler/startRun: what it accepts and stores, and each validation rule."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.simulator.support import (
    AUTH,
    PASSPHRASE,
    PASSWORD,
    basic_body,
    error_string,
    key_pair_body,
    run_body,
    start,
    url,
)

# --- startRun: success -----------------------------------------------------------------------


def test_it_starts_a_run_and_stores_it_without_credentials(simulator, openapi):
    body = basic_body(
        jobID="3",
        includeNodesSelector="{ location: STAGING name: STG_* }",
        excludeNodesSelector="{ name: STG_OLD }",
        parallelism=4,
        forceIgnoreWorkspaceStatus=True,
    )
    body["parameters"] = {"MY_PARAM": "value"}

    response = start(simulator, body)

    assert response.status_code == 200
    assert response.json() == {"runCounter": 1}
    openapi(response.json(), "/scheduler/startRun", "post")
    run = simulator.state.get_run(1)
    assert (run.environment_id, run.job_id, run.parallelism) == ("env-1", "3", 4)
    assert run.include_nodes_selector == "{ location: STAGING name: STG_* }"
    assert run.exclude_nodes_selector == "{ name: STG_OLD }"
    assert run.force_ignore_workspace_status is True
    assert run.parameters == {"MY_PARAM": "value"}
    assert run.status == "waitingToRun"
    assert PASSWORD not in repr(vars(simulator.state))


def test_it_refreshes_everything_when_no_job_or_selector_is_given(simulator):
    response = start(simulator, {"runDetails": {"environmentID": "env-1"}})

    assert response.status_code == 200
    assert simulator.state.get_run(response.json()["runCounter"]).job_id is None


def test_it_numbers_runs_in_one_increasing_sequence_across_environments(simulator):
    counters = [
        start(simulator, run_body(env)).json()["runCounter"] for env in ("a", "b", "a", "c")
    ]

    assert counters == [1, 2, 3, 4]


def test_it_accepts_oauth_with_only_the_auth_type(simulator):
    body = {**run_body(), "userCredentials": {"snowflakeAuthType": "OAuth"}}

    assert start(simulator, body).status_code == 200


@pytest.mark.parametrize("kind", ["plain", "encrypted"])
def test_it_accepts_a_real_pem_key_pair_with_real_newlines(simulator, pems, kind):
    passphrase = PASSPHRASE if kind == "encrypted" else None

    response = start(simulator, key_pair_body(pems[kind], passphrase))

    assert response.status_code == 200, response.text
    [received] = requests.get(url(simulator, "/_sim/requests"), timeout=5).json()
    assert received["keyPairKeyLoaded"] is True
    assert received["keyPairKeyEncrypted"] is (kind == "encrypted")
    assert received["body"]["userCredentials"]["snowflakeKeyPairKey"] == "***"
    assert "PRIVATE KEY" not in repr(vars(simulator.state))


def test_it_keeps_received_bodies_with_secrets_masked(simulator):
    start(simulator, basic_body())

    [received] = requests.get(url(simulator, "/_sim/requests"), timeout=5).json()

    credentials = received["body"]["userCredentials"]
    assert credentials["snowflakePassword"] == "***"
    assert credentials["snowflakeUsername"] == "SVC_USER"  # a name, not a secret
    assert (received["status"], received["runCounter"], received["authType"]) == (200, 1, "Basic")
    assert PASSWORD not in repr(simulator.state.requests_snapshot())


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
def test_it_rejects_a_start_run_body_naming_the_field(simulator, openapi, body, expected):
    response = start(simulator, body)

    assert response.status_code == 400
    assert expected in error_string(response)
    assert response.json()["error"]["errorDetail"] == error_string(response)
    assert PASSWORD not in response.text
    openapi(response.json(), "/scheduler/startRun", "post", "400")
    assert simulator.state.runs == {}


def test_it_rejects_a_body_that_is_not_json(simulator):
    response = requests.post(
        url(simulator, "/scheduler/startRun"), data="{runDetails", headers=AUTH, timeout=5
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
def test_it_rejects_a_key_pair_key_it_cannot_load(
    simulator, pems, kind, passphrase, escaped, expected
):
    # escaped: the newlines were written as the two characters backslash and n, as happens
    # when a PEM is pasted through a form that does not keep line breaks.
    key = pems[kind].replace("\n", "\\n") if escaped else pems[kind]

    response = start(simulator, key_pair_body(key, passphrase))

    assert response.status_code == 400
    assert expected in error_string(response)
    assert "PRIVATE KEY" not in response.text
    assert not passphrase or passphrase not in response.text
