"""A local stand-in for the Coalesce API (in the spirit of stripe-mock), standard library only.

It serves the slice of the API the dashboard uses (contract: /work/shared/coalesce-api.md):

- ``POST /scheduler/startRun``   validates the body strictly (section 2.1) and answers
  ``{"runCounter": N}``;
- ``GET  /scheduler/runStatus``  ``{"runStatus", "runType", "runLink"}`` (section 2.4);
- ``GET  /api/v1/runs``          the documented list shape (section 3.1), for "Test connection".

Every one of those needs ``Authorization: Bearer <token>`` exactly. Errors use Coalesce's
envelope ``{"error": {"errorString", "errorDetail"}}`` (section 1.3).

Test and demo helpers live under ``/_sim/`` and need no token (the server is meant for
127.0.0.1 only): ``GET /_sim/calls``, ``GET /_sim/requests``, ``GET|POST /_sim/behaviours``,
``POST /_sim/reset``.

Misbehaviour is chosen per environment ID (see ``MODES``), so one simulator can serve a
healthy environment and a failing one side by side. Environment IDs ``fail-<mode>`` misbehave
without any configuration, which lets demo profiles show failures out of the box.

All mutable state sits in one ``SimulatorState`` guarded by one lock, so later endpoints
(progress, results, cancel, rerun) only add methods there and a route here.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key

logger = logging.getLogger(__name__)

NORMAL = "normal"
# What each mode does to a (valid) startRun for that environment. The rule for runs: a
# 200 answer means Coalesce accepted the run, so 200-answering modes store it; the others don't.
MODES: dict[str, str] = {
    "http500": "500 with an HTML body, as a proxy in front of Coalesce would send",
    "http429": "429 with Retry-After: 7 and the JSON envelope",
    "timeout": "stores the run, then waits hang_seconds before answering 200",
    "badjson": "stores the run, answers 200 with truncated JSON",
    "nocounter": "stores the run, answers 200 with {}",
    "http400": "400 '400: Environment is not deployed'",
    "unauthorized": "401 as for a bad token",
}
FAIL_PREFIX = "fail-"

AUTH_ERROR = "401: Unable to authenticate, please ensure your token is valid."
MAX_BODY_BYTES = 1024 * 1024
KEPT_REQUESTS = 50
RUNS_DEFAULT_LIMIT = 25
RUNS_MAX_LIMIT = 1000
RUNS_ORDER_BY = ("id", "runStartTime", "runEndTime")

RUN_DETAILS_STRINGS = ("jobID", "includeNodesSelector", "excludeNodesSelector")
RUN_DETAILS_KEYS = frozenset(
    {"environmentID", *RUN_DETAILS_STRINGS, "parallelism", "forceIgnoreWorkspaceStatus"}
)
TOP_LEVEL_KEYS = frozenset({"runDetails", "userCredentials", "parameters"})
AUTH_TYPES = ("Basic", "KeyPair", "OAuth")
# Values that must never be stored or echoed; the rest of userCredentials names things.
SECRET_CREDENTIAL_KEYS = frozenset(
    {"snowflakePassword", "snowflakeKeyPairKey", "snowflakeKeyPairPass"}
)
CREDENTIAL_KEYS = frozenset(
    {"snowflakeAuthType", "snowflakeUsername", "snowflakeWarehouse", "snowflakeRole"}
    | SECRET_CREDENTIAL_KEYS
)
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

HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Internal Server Error</h1></body></html>"
)


class SimError(Exception):
    """An answer other than success: status, message for the envelope, optional headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> SimError:
    return SimError(400, f"400: {message}")


def utc_iso(moment: datetime) -> str:
    """ISO 8601 with milliseconds and a Z, as Coalesce writes its timestamps."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- state -------------------------------------------------------------------------------


@dataclass
class SimRun:
    """One accepted run. Credentials are deliberately not part of it."""

    run_counter: int
    environment_id: str
    job_id: str | None = None
    include_nodes_selector: str | None = None
    exclude_nodes_selector: str | None = None
    parallelism: int | None = None
    force_ignore_workspace_status: bool | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "waitingToRun"
    run_type: str = "refresh"

    def summary(self) -> dict[str, Any]:
        """A RunSummary as ``GET /api/v1/runs`` lists it."""
        return {
            "id": self.run_counter,
            "runType": self.run_type,
            "runStatus": self.status,
            "runStartTime": utc_iso(self.started_at),
            "environmentID": self.environment_id,
        }


class SimulatorState:
    """Runs, counters, behaviours and received requests, all behind ``self.lock``.

    Every public method takes the lock itself, so handlers (one thread per request) can
    call them freely. Behaviours given at start survive ``reset()``; runtime ones do not.
    """

    def __init__(
        self,
        token: str = "sim-token",
        behaviours: dict[str, str] | None = None,
        hang_seconds: float = 60.0,
    ) -> None:
        for environment_id, mode in (behaviours or {}).items():
            check_mode(environment_id, mode)
        self.token = token
        self.hang_seconds = hang_seconds
        self.base_url = ""  # set by make_server once the port is known
        self.lock = threading.Lock()
        # Set when the server closes, so a "timeout" hang ends with it instead of later.
        self.closing = threading.Event()
        self._startup_behaviours = dict(behaviours or {})
        self._reset_unlocked()

    def _reset_unlocked(self) -> None:
        self.runs: dict[int, SimRun] = {}
        self.next_counter = 1
        self.behaviours: dict[str, str] = dict(self._startup_behaviours)
        self.calls: Counter[str] = Counter()
        self.requests: deque[dict[str, Any]] = deque(maxlen=KEPT_REQUESTS)

    def reset(self) -> None:
        """Forget runs, counters, calls, received requests and runtime behaviours."""
        with self.lock:
            self._reset_unlocked()

    def set_behaviour(self, environment_id: str, mode: str) -> None:
        """Make ``environment_id`` misbehave; "" or "normal" makes it behave.

        "normal" is stored rather than dropped, so it also heals a ``fail-`` environment or
        one configured at start (until the next reset).
        """
        mode = mode or NORMAL
        check_mode(environment_id, mode)
        with self.lock:
            self.behaviours[environment_id] = mode

    def behaviour_for(self, environment_id: str) -> str:
        """The mode for this environment: configured, else from a ``fail-`` ID, else normal."""
        with self.lock:
            mode = self.behaviours.get(environment_id)
        if mode:
            return mode
        if environment_id.startswith(FAIL_PREFIX):
            implied = environment_id.removeprefix(FAIL_PREFIX)
            if implied in MODES:
                return implied
        return NORMAL

    def behaviours_snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.behaviours)

    def count_call(self, method: str, path: str) -> None:
        with self.lock:
            self.calls[f"{method} {path}"] += 1

    def calls_snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.calls)

    def record_request(self, entry: dict[str, Any]) -> None:
        """Keep a received startRun (already redacted by the caller) for tests to inspect."""
        with self.lock:
            self.requests.append(entry)

    def requests_snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self.requests))

    def start_run(self, run_details: dict[str, Any], parameters: dict[str, str]) -> SimRun:
        """Store a new run under the next runCounter (one sequence for all environments)."""
        with self.lock:
            run = SimRun(
                run_counter=self.next_counter,
                environment_id=run_details["environmentID"],
                job_id=run_details.get("jobID"),
                include_nodes_selector=run_details.get("includeNodesSelector"),
                exclude_nodes_selector=run_details.get("excludeNodesSelector"),
                parallelism=run_details.get("parallelism"),
                force_ignore_workspace_status=run_details.get("forceIgnoreWorkspaceStatus"),
                parameters=dict(parameters),
            )
            self.runs[run.run_counter] = run
            self.next_counter += 1
            return run

    def get_run(self, run_counter: int) -> SimRun | None:
        with self.lock:
            return self.runs.get(run_counter)

    def list_runs(
        self,
        *,
        limit: int = RUNS_DEFAULT_LIMIT,
        descending: bool = True,
        environment_id: str | None = None,
        run_type: str | None = None,
        run_status: str | None = None,
        starting_from: int | None = None,
    ) -> list[SimRun]:
        """Runs ordered by ID, filtered, after the exclusive ``starting_from`` cursor."""
        with self.lock:
            runs = sorted(self.runs.values(), key=lambda r: r.run_counter, reverse=descending)
        selected = [
            run
            for run in runs
            if (environment_id is None or run.environment_id == environment_id)
            and (run_type is None or run.run_type == run_type)
            and (run_status is None or run.status == run_status)
            and (starting_from is None or _after(run.run_counter, starting_from, descending))
        ]
        return selected[:limit]


def _after(run_counter: int, cursor: int, descending: bool) -> bool:
    return run_counter < cursor if descending else run_counter > cursor


def check_mode(environment_id: str, mode: str) -> None:
    if not isinstance(environment_id, str) or not environment_id:
        raise ValueError("environmentID must be a non-empty string")
    if not isinstance(mode, str) or (mode != NORMAL and mode not in MODES):
        raise ValueError(f"unknown mode {mode!r}; use one of: normal, {', '.join(MODES)}")


# --- startRun validation -----------------------------------------------------------------


@dataclass
class StartRunRequest:
    """A validated startRun body, plus what the simulator learnt about the secrets."""

    run_details: dict[str, Any]
    parameters: dict[str, str]
    auth_type: str | None
    key_pair_key_loaded: bool | None = None
    key_pair_key_encrypted: bool | None = None


def validate_start_run(body: Any) -> StartRunRequest:
    """Check a startRun body against contract 2.1; raise a 400 ``SimError`` naming the field.

    Error messages name fields, never values, so a secret can't come back in an answer.
    """
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    unknown = sorted(set(body) - TOP_LEVEL_KEYS)
    if unknown:
        raise bad_request(f"unknown top-level field(s): {', '.join(unknown)}")
    run_details = _validate_run_details(body.get("runDetails"))
    parameters = _validate_parameters(body.get("parameters", {}))
    request = StartRunRequest(run_details, parameters, auth_type=None)
    if "userCredentials" in body:
        _validate_credentials(body["userCredentials"], request)
    return request


def _validate_run_details(details: Any) -> dict[str, Any]:
    if not isinstance(details, dict):
        raise bad_request("runDetails is required and must be an object")
    unknown = sorted(set(details) - RUN_DETAILS_KEYS)
    if unknown:
        raise bad_request(f"unknown runDetails field(s): {', '.join(unknown)}")
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
    if not isinstance(credentials, dict):
        raise bad_request("userCredentials must be an object")
    unknown = sorted(set(credentials) - CREDENTIAL_KEYS)
    if unknown:
        raise bad_request(f"unknown userCredentials field(s): {', '.join(unknown)}")
    for name, value in credentials.items():
        if not isinstance(value, str):
            raise bad_request(f"userCredentials.{name} must be a string")
    auth_type = credentials.get("snowflakeAuthType", "Basic")
    if auth_type not in AUTH_TYPES:
        raise bad_request(f"userCredentials.snowflakeAuthType must be one of {AUTH_TYPES}")
    request.auth_type = auth_type
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


# --- HTTP --------------------------------------------------------------------------------


class SimulatorServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer carrying a ``SimulatorState`` as ``.state``."""

    daemon_threads = True
    state: SimulatorState

    def server_close(self) -> None:
        state = getattr(self, "state", None)  # absent when binding failed in __init__
        if state is not None:
            state.closing.set()  # release any "timeout" handler still hanging
        super().server_close()


class SimulatorHandler(BaseHTTPRequestHandler):
    """Routes requests through ``ROUTES``; each handler sends its answer or raises SimError."""

    server: SimulatorServer
    server_version = "CoalesceSimulator/1"

    # --- plumbing ---

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    @property
    def state(self) -> SimulatorState:
        return self.server.state

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.route_path = url.path
        self.query = parse_qs(url.query, keep_blank_values=True)
        if not url.path.startswith("/_sim/"):
            self.state.count_call(self.command, url.path)
        try:
            methods = ROUTES.get(url.path)
            if methods is None:
                raise SimError(404, f"404: no such endpoint {url.path}")
            handler = methods.get(self.command)
            if handler is None:
                allow = ", ".join(sorted(methods))
                raise SimError(405, f"405: use {allow}", headers={"Allow": allow})
            handler(self)
        except SimError as error:
            self.send_envelope(error)
        except (BrokenPipeError, ConnectionResetError):
            logger.info("client went away before the answer to %s %s", self.command, url.path)

    def require_token(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            raise SimError(401, AUTH_ERROR)

    def read_json(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise bad_request("invalid Content-Length") from exc
        if length > MAX_BODY_BYTES:
            raise bad_request("request body too large")
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request("the request body must be valid JSON") from exc

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def send_envelope(self, error: SimError) -> None:
        envelope = {"error": {"errorString": error.message, "errorDetail": error.message}}
        self.send_json(error.status, envelope, error.headers)

    def send_raw(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # One line per request; the path without its query and never a header or body.
        code = code.value if isinstance(code, HTTPStatus) else code
        logger.info("%s %s -> %s", self.command, getattr(self, "route_path", "?"), code)

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own messages (malformed requests and the like) go to logging, not stderr.
        logger.debug("simulator: " + format, *args)

    # --- Coalesce endpoints ---

    def handle_start_run(self) -> None:
        """POST /scheduler/startRun: validate, then answer as this environment's mode says."""
        self.require_token()
        body = self.read_json()
        entry: dict[str, Any] = {
            "receivedAt": utc_iso(datetime.now(UTC)),
            "body": redact_body(body),
        }
        try:
            request = validate_start_run(body)
        except SimError as error:
            self.state.record_request({**entry, "status": error.status, "error": error.message})
            raise
        entry["authType"] = request.auth_type
        entry["keyPairKeyLoaded"] = request.key_pair_key_loaded
        entry["keyPairKeyEncrypted"] = request.key_pair_key_encrypted
        mode = self.state.behaviour_for(request.run_details["environmentID"])
        entry["mode"] = mode
        respond = START_RUN_MODES.get(mode, _answer_normal)
        respond(self, request, entry)

    def handle_run_status(self) -> None:
        """GET /scheduler/runStatus?runCounter=N."""
        self.require_token()
        raw = self.query_value("runCounter")
        if raw is None or not raw.isdigit():
            raise bad_request("runCounter is required and must be an integer")
        run = self.state.get_run(int(raw))
        if run is None:
            raise SimError(404, f"404: run {int(raw)} not found")
        self.send_json(
            200,
            {
                "runStatus": run.status,
                "runType": run.run_type,
                "runLink": f"{self.state.base_url}/runs/{run.run_counter}",
            },
        )

    def handle_list_runs(self) -> None:
        """GET /api/v1/runs: limit, orderBy, orderByDirection and the documented filters."""
        self.require_token()
        limit = _int_param(self.query_value("limit"), "limit", RUNS_DEFAULT_LIMIT)
        if not 0 <= limit <= RUNS_MAX_LIMIT:
            raise bad_request(f"limit must be between 0 and {RUNS_MAX_LIMIT}")
        order_by = self.query_value("orderBy") or "id"
        if order_by not in RUNS_ORDER_BY:
            raise bad_request(f"orderBy must be one of {', '.join(RUNS_ORDER_BY)}")
        direction = self.query_value("orderByDirection") or "desc"
        if direction not in ("asc", "desc"):
            raise bad_request("orderByDirection must be asc or desc")
        # Runs are numbered in start order, so ordering by id also orders by start time.
        runs = self.state.list_runs(
            limit=limit,
            descending=direction == "desc",
            environment_id=self.query_value("environmentID"),
            run_type=self.query_value("runType"),
            run_status=self.query_value("runStatus"),
            starting_from=_int_param(self.query_value("startingFrom"), "startingFrom", None),
        )
        self.send_json(
            200,
            {
                "data": [run.summary() for run in runs],
                "limit": limit,
                "orderBy": order_by,
                "orderByDirection": direction,
            },
        )

    # --- simulator controls ---

    def handle_calls(self) -> None:
        self.send_json(200, self.state.calls_snapshot())

    def handle_requests(self) -> None:
        self.send_json(200, self.state.requests_snapshot())

    def handle_reset(self) -> None:
        self.state.reset()
        self.send_json(200, {"reset": True})

    def handle_get_behaviours(self) -> None:
        self.send_json(200, self.state.behaviours_snapshot())

    def handle_set_behaviour(self) -> None:
        body = self.read_json()
        if not isinstance(body, dict):
            raise bad_request('send {"environmentID": "...", "mode": "..."}')
        try:
            self.state.set_behaviour(body.get("environmentID"), body.get("mode") or NORMAL)
        except ValueError as exc:
            raise bad_request(str(exc)) from exc
        self.send_json(200, self.state.behaviours_snapshot())


def _int_param(raw: str | None, name: str, default: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"{name} must be an integer") from exc


# --- startRun answers, one per mode --------------------------------------------------------

StartRunAnswer = Callable[[SimulatorHandler, StartRunRequest, dict[str, Any]], None]


def _accept(handler: SimulatorHandler, request: StartRunRequest, entry: dict[str, Any]) -> int:
    run = handler.state.start_run(request.run_details, request.parameters)
    handler.state.record_request({**entry, "status": 200, "runCounter": run.run_counter})
    return run.run_counter


def _refuse(
    handler: SimulatorHandler, entry: dict[str, Any], status: int, message: str, **headers: str
) -> None:
    handler.state.record_request({**entry, "status": status, "error": message})
    raise SimError(status, message, headers=headers)


def _answer_normal(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    h.send_json(200, {"runCounter": _accept(h, req, entry)})


def _answer_timeout(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    # The run is stored before the hang: a client that gives up must not assume it failed.
    run_counter = _accept(h, req, entry)
    h.state.closing.wait(h.state.hang_seconds)
    h.send_json(200, {"runCounter": run_counter})


def _answer_badjson(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    _accept(h, req, entry)
    h.send_raw(200, b'{"runCounter": ', "application/json")


def _answer_nocounter(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    _accept(h, req, entry)
    h.send_json(200, {})


def _answer_http500(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    h.state.record_request({**entry, "status": 500})
    h.send_raw(500, HTML_500.encode(), "text/html; charset=utf-8")


def _answer_http429(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    _refuse(h, entry, 429, "429: Too many requests, please retry later.", **{"Retry-After": "7"})


def _answer_http400(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    _refuse(h, entry, 400, "400: Environment is not deployed")


def _answer_unauthorized(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    _refuse(h, entry, 401, AUTH_ERROR)


START_RUN_MODES: dict[str, StartRunAnswer] = {
    NORMAL: _answer_normal,
    "timeout": _answer_timeout,
    "badjson": _answer_badjson,
    "nocounter": _answer_nocounter,
    "http500": _answer_http500,
    "http429": _answer_http429,
    "http400": _answer_http400,
    "unauthorized": _answer_unauthorized,
}

ROUTES: dict[str, dict[str, Callable[[SimulatorHandler], None]]] = {
    "/scheduler/startRun": {"POST": SimulatorHandler.handle_start_run},
    "/scheduler/runStatus": {"GET": SimulatorHandler.handle_run_status},
    "/api/v1/runs": {"GET": SimulatorHandler.handle_list_runs},
    "/_sim/calls": {"GET": SimulatorHandler.handle_calls},
    "/_sim/requests": {"GET": SimulatorHandler.handle_requests},
    "/_sim/reset": {"POST": SimulatorHandler.handle_reset},
    "/_sim/behaviours": {
        "GET": SimulatorHandler.handle_get_behaviours,
        "POST": SimulatorHandler.handle_set_behaviour,
    },
}


def make_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str = "sim-token",
    behaviours: dict[str, str] | None = None,
    hang_seconds: float = 60.0,
) -> SimulatorServer:
    """Bind (port 0 picks a free port) but don't serve; call ``serve_forever`` on the result.

    ``behaviours`` maps environment IDs to modes from ``MODES`` and survives ``/_sim/reset``.
    Raises ``ValueError`` for an unknown mode. ``server.state`` is the ``SimulatorState``.
    """
    state = SimulatorState(token=token, behaviours=behaviours, hang_seconds=hang_seconds)
    server = SimulatorServer((host, port), SimulatorHandler)
    server.state = state
    bound_host, bound_port = server.server_address[:2]
    state.base_url = f"http://{bound_host}:{bound_port}"
    return server
