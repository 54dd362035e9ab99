"""Request bodies checked as Coalesce checks them, and secrets masked in what is kept of them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from coalesce_simulator.clock import EPOCH, iso_micros
from coalesce_simulator.errors import bad_request

MAX_BULK_RUNS = 10_000
RUN_DETAILS_STRINGS = ("jobID", "includeNodesSelector", "excludeNodesSelector")
RUN_DETAILS_KEYS = frozenset(
    {"environmentID", *RUN_DETAILS_STRINGS, "parallelism", "forceIgnoreWorkspaceStatus"}
)
RERUN_DETAILS_KEYS = frozenset({"runID", "forceIgnoreWorkspaceStatus"})
TOP_LEVEL_KEYS = frozenset({"runDetails", "userCredentials", "parameters"})
CANCEL_KEYS = frozenset({"runID", "orgID", "environmentID"})
AUTH_TYPES = ("Basic", "KeyPair", "OAuth")
# Values that must never be stored or echoed; the rest of userCredentials names things.
SECRET_CREDENTIAL_KEYS = frozenset(
    {"snowflakePassword", "snowflakeKeyPairKey", "snowflakeKeyPairPass"}
)
NAMING_CREDENTIAL_KEYS = ("snowflakeUsername", "snowflakeWarehouse", "snowflakeRole")
CREDENTIAL_KEYS = frozenset({"snowflakeAuthType", *NAMING_CREDENTIAL_KEYS} | SECRET_CREDENTIAL_KEYS)
# Per auth type: what must be there, and secrets that belong to another type (sending them
# anyway leaks a secret Coalesce does not need, so the simulator refuses it).
REQUIRED_CREDENTIALS = {
    "Basic": ("snowflakeUsername", "snowflakePassword"),
    "KeyPair": ("snowflakeUsername", "snowflakeKeyPairKey"),
}
FOREIGN_SECRETS = {
    "Basic": ("snowflakeKeyPairKey", "snowflakeKeyPairPass"),
    "KeyPair": ("snowflakePassword",),
}


@dataclass
class StartRunRequest:
    """A validated startRun body, plus what the simulator learnt about the secrets."""

    run_details: dict[str, Any]
    parameters: dict[str, str]
    auth_type: str | None
    key_pair_key_loaded: bool | None = None
    key_pair_key_encrypted: bool | None = None
    # Non-secret userCredentials (auth type, user, warehouse, role), echoed by RunInfo.
    credential_names: dict[str, str] = field(default_factory=dict)
    # For a rerun: the original run, and whether parameters were sent.
    rerun_of: int | None = None
    parameters_given: bool = True


def validate_start_run(body: Any) -> StartRunRequest:
    """Check a startRun body (docs/coalesce-api.md §3); raise a 400 ``SimError`` naming
    the field.

    Error messages name fields, never values, so a secret can't come back in an answer.
    """
    _object(body, TOP_LEVEL_KEYS, "the request body", "top-level field(s)")
    run_details = _validate_run_details(body.get("runDetails"))
    parameters = _validate_parameters(body.get("parameters", {}))
    request = StartRunRequest(run_details, parameters, auth_type=None)
    if "userCredentials" in body:
        _validate_credentials(body["userCredentials"], request)
    return request


def validate_rerun(body: Any) -> StartRunRequest:
    """Check a rerun body (docs/coalesce-api.md §4.1: runID a string, userCredentials
    required)."""
    _object(body, TOP_LEVEL_KEYS, "the request body", "top-level field(s)")
    details = _object(body.get("runDetails"), RERUN_DETAILS_KEYS, "runDetails")
    run_id = details.get("runID")
    if not isinstance(run_id, str) or not (run_id.isascii() and run_id.isdigit()):
        raise bad_request(
            "runDetails.runID is required and must be a string holding the run's number"
        )
    if "forceIgnoreWorkspaceStatus" in details and not isinstance(
        details["forceIgnoreWorkspaceStatus"], bool
    ):
        raise bad_request("runDetails.forceIgnoreWorkspaceStatus must be a boolean")
    if "userCredentials" not in body:
        raise bad_request("userCredentials is required for a rerun")
    request = StartRunRequest(
        details,
        _validate_parameters(body.get("parameters", {})),
        auth_type=None,
        rerun_of=int(run_id),
        parameters_given="parameters" in body,
    )
    _validate_credentials(body["userCredentials"], request)
    return request


def validate_cancel(body: Any) -> tuple[int, str]:
    """Check a cancelRun body (docs/coalesce-api.md §4.2; all three fields required here);
    returns (runID, envID)."""
    _object(body, CANCEL_KEYS, "the request body", "field(s)")
    run_id = body.get("runID")
    if isinstance(run_id, bool) or not isinstance(run_id, int):
        raise bad_request("runID is required and must be an integer")
    for name in ("orgID", "environmentID"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise bad_request(f"{name} is required and must be a non-empty string")
    return run_id, body["environmentID"]


def validate_bulk(body: Any) -> tuple[int, list[str], str | None]:
    """``POST /_sim/runs``: (count, environmentIDs, jobID)."""
    if not isinstance(body, dict):
        raise bad_request('send {"count": N, "environmentIDs": ["..."], "jobID": "..."}')
    count = body.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BULK_RUNS:
        raise bad_request(f"count must be an integer from 1 to {MAX_BULK_RUNS}")
    environment_ids = body.get("environmentIDs")
    if (
        not isinstance(environment_ids, list)
        or not environment_ids
        or not all(isinstance(e, str) and e for e in environment_ids)
    ):
        raise bad_request("environmentIDs must be a non-empty list of non-empty strings")
    job_id = body.get("jobID")
    if job_id is not None and not isinstance(job_id, str):
        raise bad_request("jobID must be a string")
    return count, environment_ids, job_id


def _object(value: Any, allowed: frozenset[str] | set[str], name: str,
            unknown_label: str = "", *, optional: bool = False) -> dict[str, Any]:
    """`value` as a JSON object with only `allowed` keys, else a 400 naming `name`."""
    if not isinstance(value, dict):
        if name == "the request body":
            raise bad_request("the request body must be a JSON object")
        required = "" if optional else " is required and"
        raise bad_request(f"{name}{required} must be an object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise bad_request(f"unknown {unknown_label or name + ' field(s)'}: {', '.join(unknown)}")
    return value


def _validate_run_details(details: Any) -> dict[str, Any]:
    _object(details, RUN_DETAILS_KEYS, "runDetails")
    environment_id = details.get("environmentID")
    if not isinstance(environment_id, str) or not environment_id:
        raise bad_request("runDetails.environmentID is required and must be a non-empty string")
    for name in RUN_DETAILS_STRINGS:
        if name in details and not isinstance(details[name], str):
            raise bad_request(f"runDetails.{name} must be a string")
    if "parallelism" in details:
        parallelism = details["parallelism"]
        # bool is an int subclass in Python; JSON true is not a parallelism.
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
            raise bad_request("runDetails.parallelism must be an integer >= 1")
    if "forceIgnoreWorkspaceStatus" in details and not isinstance(
        details["forceIgnoreWorkspaceStatus"], bool
    ):
        raise bad_request("runDetails.forceIgnoreWorkspaceStatus must be a boolean")
    return details


def _validate_parameters(parameters: Any) -> dict[str, str]:
    # Working clients send an object of strings; the 2024 spec's JSON string form is refused
    # here on purpose, so the dashboard is held to what real tenants accept.
    if not isinstance(parameters, dict):
        raise bad_request("parameters must be a JSON object of string values")
    for name, value in parameters.items():
        if not isinstance(value, str):
            raise bad_request(f"parameters.{name} must be a string")
    return parameters


def _validate_credentials(credentials: Any, request: StartRunRequest) -> None:
    _object(credentials, CREDENTIAL_KEYS, "userCredentials", optional=True)
    for name, value in credentials.items():
        if not isinstance(value, str):
            raise bad_request(f"userCredentials.{name} must be a string")
    auth_type = credentials.get("snowflakeAuthType", "Basic")
    if auth_type not in AUTH_TYPES:
        raise bad_request(f"userCredentials.snowflakeAuthType must be one of {AUTH_TYPES}")
    request.auth_type = auth_type
    request.credential_names = {"snowflakeAuthType": auth_type} | {
        name: credentials[name] for name in NAMING_CREDENTIAL_KEYS if credentials.get(name)
    }
    if auth_type == "OAuth":
        if set(credentials) - {"snowflakeAuthType"}:
            raise bad_request("userCredentials for OAuth must carry only snowflakeAuthType")
        return
    for name in REQUIRED_CREDENTIALS[auth_type]:
        if not credentials.get(name):
            raise bad_request(f"userCredentials.{name} is required for {auth_type}")
    for name in FOREIGN_SECRETS[auth_type]:
        if name in credentials:
            raise bad_request(f"userCredentials.{name} does not belong with {auth_type}")
    if auth_type == "KeyPair":
        _check_private_key(credentials, request)


def _check_private_key(credentials: dict[str, str], request: StartRunRequest) -> None:
    """Prove the key is a loadable PEM: real newlines, right passphrase (if encrypted)."""
    key = credentials["snowflakeKeyPairKey"]
    passphrase = credentials.get("snowflakeKeyPairPass")
    if "\\n" in key and "\n" not in key:
        raise bad_request(
            "userCredentials.snowflakeKeyPairKey contains literal \\n text instead of newlines"
        )
    if passphrase == "":
        raise bad_request("userCredentials.snowflakeKeyPairPass must be omitted when empty")
    password = passphrase.encode() if passphrase is not None else None
    try:
        load_pem_private_key(key.encode(), password=password)
    except TypeError as exc:
        # cryptography's TypeError means a passphrase is missing, or given for a plain key.
        if password is None:
            raise bad_request(
                "userCredentials.snowflakeKeyPairKey is encrypted but snowflakeKeyPairPass "
                "is missing"
            ) from exc
        raise bad_request(
            "userCredentials.snowflakeKeyPairPass was given but the key is not encrypted"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise bad_request(
            "userCredentials.snowflakeKeyPairKey could not be loaded as a PEM private key "
            "(malformed, or wrong snowflakeKeyPairPass)"
        ) from exc
    request.key_pair_key_loaded = True
    request.key_pair_key_encrypted = password is not None


def redact_body(body: Any) -> Any:
    """A copy of a startRun body safe to keep: secret credential values become "***".

    Unknown userCredentials keys are masked too, since they may hold secrets.
    """
    if not isinstance(body, dict):
        return "***" if body is not None else None
    redacted = copy.deepcopy(body)
    credentials = redacted.get("userCredentials")
    if isinstance(credentials, dict):
        for name in credentials:
            if name in SECRET_CREDENTIAL_KEYS or name not in CREDENTIAL_KEYS:
                credentials[name] = "***"
    elif "userCredentials" in redacted:
        redacted["userCredentials"] = "***"
    return redacted


def parse_cursor(order_by: str, raw: Any) -> int | None:
    """``startingFrom`` typed by ``orderBy``: a run ID, else microseconds since the epoch.

    Accepts ints and digit strings for ``id``, ISO 8601 strings or aware datetimes for the
    times; raises ``ValueError`` for anything else.
    """
    if raw is None or raw == "":
        return None
    if order_by == "id":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.isascii() and raw.lstrip("-").isdigit():
            return int(raw)
        raise ValueError("startingFrom must be a run ID when orderBy is id")
    if isinstance(raw, datetime):
        moment = raw if raw.tzinfo else raw.replace(tzinfo=UTC)
        return (moment - EPOCH) // timedelta(microseconds=1)
    if isinstance(raw, str):
        try:
            return iso_micros(raw)
        except ValueError:
            pass
    raise ValueError(f"startingFrom must be an ISO 8601 date-time when orderBy is {order_by}")
