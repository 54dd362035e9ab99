"""Constants and HTTP helpers shared by the simulator's tests (fixtures are in conftest.py)."""

from __future__ import annotations

from typing import Any

import requests

from coalesce_simulator import SimulatorServer

TOKEN = "test-sim-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSPHRASE = "correct horse battery"
PASSWORD = "basic-password-s3cret"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, where the frozen clock stands
T0_ISO = "2026-01-01T00:00:00.000Z"


def url(server: SimulatorServer, path: str) -> str:
    return server.base_url + path


def start(
    server: SimulatorServer, body: Any, headers: dict | None = None, **kw
) -> requests.Response:
    return requests.post(
        url(server, "/scheduler/startRun"),
        json=body,
        headers=AUTH if headers is None else headers,
        timeout=kw.pop("timeout", 5),
        **kw,
    )


def list_runs(server: SimulatorServer, **params) -> requests.Response:
    return requests.get(url(server, "/api/v1/runs"), params=params, headers=AUTH, timeout=5)


def get(server: SimulatorServer, path: str, **params) -> requests.Response:
    return requests.get(url(server, path), params=params, headers=AUTH, timeout=5)


def status_of(server: SimulatorServer, run_counter: int) -> str:
    return get(server, "/scheduler/runStatus", runCounter=run_counter).json()["runStatus"]


def results_of(server: SimulatorServer, run_counter: int) -> list[dict[str, Any]]:
    return get(server, f"/api/v1/runs/{run_counter}/results").json()["data"]


def run_body(environment_id: str = "env-1", **details) -> dict[str, Any]:
    return {"runDetails": {"environmentID": environment_id, **details}}


def started(server: SimulatorServer, environment_id: str = "env-1", **details) -> int:
    response = start(server, basic_body(environment_id, **details))
    assert response.status_code == 200, response.text
    return response.json()["runCounter"]


def rerun(server: SimulatorServer, run_id: Any, **extra) -> requests.Response:
    body = {"runDetails": {"runID": run_id}, "userCredentials": basic_body()["userCredentials"]}
    body.update(extra)
    return requests.post(url(server, "/scheduler/rerun"), json=body, headers=AUTH, timeout=5)


def cancel(server: SimulatorServer, body: Any) -> requests.Response:
    return requests.post(url(server, "/scheduler/cancelRun"), json=body, headers=AUTH, timeout=5)


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


def cancel_body(run_id: Any, environment_id: Any = "env-1", **extra) -> dict[str, Any]:
    return {"runID": run_id, "orgID": "org-1", "environmentID": environment_id, **extra}


def all_pages(server: SimulatorServer, **params) -> tuple[list[int], int]:
    """Follow ``next`` from page to page: (run IDs in order, pages fetched)."""
    ids: list[int] = []
    pages = 0
    cursor = None
    while True:
        query = dict(params, **({"startingFrom": cursor} if cursor is not None else {}))
        body = list_runs(server, **query).json()
        pages += 1
        ids += [run["id"] for run in body["data"]]
        cursor = body.get("next")
        if cursor is None:
            return ids, pages
        assert pages < 100
