"""The HTTP side: the handler and its routes, the startRun answer per mode, make_server."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from coalesce_simulator.catalogue import DEFAULT_NODE_COUNT
from coalesce_simulator.errors import AUTH_ERROR, SimError, bad_request
from coalesce_simulator.modes import HTML_500, NORMAL, start_run_answer
from coalesce_simulator.run import DEFAULT_RUN_SECONDS, SimRun
from coalesce_simulator.state import RUNS_DEFAULT_LIMIT, SimulatorState
from coalesce_simulator.validation import (
    StartRunRequest,
    parse_cursor,
    redact_body,
    validate_bulk,
    validate_cancel,
    validate_rerun,
    validate_start_run,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
RUNS_MAX_LIMIT = 1000
RUNS_ORDER_BY = ("id", "runStartTime", "runEndTime")
RUN_STATUSES = ("canceled", "completed", "failed", "running", "waitingToRun")
RUN_TYPES = ("deploy", "refresh")


RUN_TEMPLATE = "/api/v1/runs/{id}"
RESULTS_TEMPLATE = "/api/v1/runs/{id}/results"
ENVIRONMENT_TEMPLATE = "/api/v1/environments/{id}"
NODES_TEMPLATE = "/api/v1/environments/{id}/nodes"
NODE_TEMPLATE = "/api/v1/environments/{id}/nodes/{nodeID}"
JOB_TEMPLATE = "/api/v1/environments/{id}/jobs/{jobID}"
NODES_MAX_LIMIT = 1000
# Paths with a run ID in them, matched to the template they are routed and counted under.
TEMPLATES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/api/v1/runs/([^/]+)"), RUN_TEMPLATE),
    (re.compile(r"/api/v1/runs/([^/]+)/results"), RESULTS_TEMPLATE),
    (re.compile(r"/api/v1/environments/([^/]+)/nodes"), NODES_TEMPLATE),
    (re.compile(r"/api/v1/environments/([^/]+)/nodes/([^/]+)"), NODE_TEMPLATE),
    (re.compile(r"/api/v1/environments/([^/]+)/jobs/([^/]+)"), JOB_TEMPLATE),
    (re.compile(r"/api/v1/environments/([^/]+)"), ENVIRONMENT_TEMPLATE),
)


def resolve_path(path: str) -> tuple[str, tuple[str, ...]]:
    """(route or template, path arguments): ``/api/v1/runs/7`` -> (RUN_TEMPLATE, ("7",))."""
    if path in ROUTES:
        return path, ()
    for pattern, template in TEMPLATES:
        match = pattern.fullmatch(path)
        if match:
            return template, match.groups()
    return path, ()


class SimulatorServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer carrying a ``SimulatorState`` as ``.state``."""

    daemon_threads = True
    state: SimulatorState

    @property
    def base_url(self) -> str:
        """Where it listens, such as ``http://127.0.0.1:8001`` (no trailing slash)."""
        return self.state.base_url

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
        route, self.path_args = resolve_path(url.path)
        if not url.path.startswith("/_sim/"):
            self.state.count_call(self.command, route)
        try:
            methods = ROUTES.get(route)
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

    def send_no_content(self) -> None:
        self.send_response(204)  # no body, and so (RFC 9110) no Content-Length either
        self.end_headers()

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
        entry = self._entry(body)
        try:
            request = validate_start_run(body)
        except SimError as error:
            self.state.record_request({**entry, "status": error.status, "error": error.message})
            raise
        self._answer_start(request, entry, request.run_details["environmentID"])

    def handle_rerun(self) -> None:
        """POST /scheduler/rerun: validate, check the original failed, answer by its mode."""
        self.require_token()
        body = self.read_json()
        entry = self._entry(body)
        try:
            request = validate_rerun(body)
            original = self.state.check_rerunnable(int(request.run_details["runID"]))
        except SimError as error:
            self.state.record_request({**entry, "status": error.status, "error": error.message})
            raise
        self._answer_start(request, entry, original.environment_id)

    def _entry(self, body: Any) -> dict[str, Any]:
        return {
            "receivedAt": self.state.now_iso(),
            "path": self.route_path,
            "body": redact_body(body),
        }

    def _answer_start(
        self, request: StartRunRequest, entry: dict[str, Any], environment_id: str
    ) -> None:
        entry["authType"] = request.auth_type
        entry["keyPairKeyLoaded"] = request.key_pair_key_loaded
        entry["keyPairKeyEncrypted"] = request.key_pair_key_encrypted
        mode = self.state.behaviour_for(environment_id)
        entry["mode"] = mode
        respond = start_run_answer(mode)
        respond(self, request, entry)

    def handle_cancel_run(self) -> None:
        """POST /scheduler/cancelRun: 204 when the run was waiting or running."""
        self.require_token()
        run_id, environment_id = validate_cancel(self.read_json())
        self.state.cancel_run(run_id, environment_id)
        self.send_no_content()

    def _known_run(self, raw: str | None, name: str) -> SimRun:
        """The run numbered ``raw`` (400 if not a number, 404 if unknown), after any 429."""
        if raw is None or not (raw.isascii() and raw.isdigit()):
            raise bad_request(f"{name} is required and must be an integer")
        run = self.state.get_run(int(raw))
        if run is None:
            raise SimError(404, f"404: run {int(raw)} not found")
        refusal = self.state.read_refusal(run.environment_id)
        if refusal is not None:
            raise refusal
        return run

    def handle_run_status(self) -> None:
        """GET /scheduler/runStatus?runCounter=N."""
        self.require_token()
        run = self._known_run(self.query_value("runCounter"), "runCounter")
        self.send_json(
            200,
            {
                "runStatus": self.state.run_status(run.run_counter),
                "runType": run.run_type,
                "runLink": f"{self.state.base_url}/runs/{run.run_counter}",
            },
        )

    def handle_get_run(self) -> None:
        """GET /api/v1/runs/{runID}: RunInfo."""
        self.require_token()
        run = self._known_run(self.path_args[0], "runID")
        self.send_json(200, self.state.run_info(run.run_counter))

    def handle_get_results(self) -> None:
        """GET /api/v1/runs/{runID}/results: {"data": [RunResult]}."""
        self.require_token()
        run = self._known_run(self.path_args[0], "runID")
        self.send_json(200, {"data": self.state.run_results(run.run_counter)})

    def handle_get_environment(self) -> None:
        """GET /api/v1/environments/{environmentID}: the environment, answered as its mode
        answers a start (a 500, a 401) so a connection test sees what a start would; an
        ID starting with "missing" is unknown (404)."""
        self.require_token()
        environment_id = self.path_args[0]
        refusal = self.state.read_refusal(environment_id)
        if refusal is not None:
            raise refusal
        mode = self.state.behaviour_for(environment_id)
        if mode == "http500":
            self.send_raw(500, HTML_500.encode(), "text/html; charset=utf-8")
            return
        if mode == "unauthorized":
            raise SimError(401, AUTH_ERROR)
        if environment_id.startswith("missing"):
            raise SimError(404, f"Environment {environment_id} not found")
        self.send_json(200, {"id": environment_id, "name": f"Simulated {environment_id}",
                             "project": "simulator", "oauthEnabled": True,
                             "runTimeParameters": {}})

    def handle_list_runs(self) -> None:
        """GET /api/v1/runs: filters, order, paging with startingFrom and ``next``."""
        self.require_token()
        environment_id = self.query_value("environmentID") or None
        if environment_id is not None:
            refusal = self.state.read_refusal(environment_id)
            if refusal is not None:
                raise refusal
        limit = _int_param(self.query_value("limit"), "limit", RUNS_DEFAULT_LIMIT)
        if not 0 <= limit <= RUNS_MAX_LIMIT:
            raise bad_request(f"limit must be between 0 and {RUNS_MAX_LIMIT}")
        order_by = self.query_value("orderBy") or "id"
        if order_by not in RUNS_ORDER_BY:
            raise bad_request(f"orderBy must be one of {', '.join(RUNS_ORDER_BY)}")
        direction = self.query_value("orderByDirection") or "desc"
        if direction not in ("asc", "desc"):
            raise bad_request("orderByDirection must be asc or desc")
        run_status = self.query_value("runStatus") or None
        if run_status is not None and run_status not in RUN_STATUSES:
            raise bad_request(f"runStatus must be one of {', '.join(RUN_STATUSES)}")
        run_type = self.query_value("runType") or None
        if run_type is not None and run_type not in RUN_TYPES:
            raise bad_request(f"runType must be one of {', '.join(RUN_TYPES)}")
        detail = (self.query_value("detail") or "false").lower()
        if detail not in ("true", "false"):
            raise bad_request("detail must be true or false")
        try:
            cursor = parse_cursor(order_by, self.query_value("startingFrom"))
        except ValueError as exc:
            raise bad_request(str(exc)) from exc
        page = self.state.list_page(
            limit=limit,
            descending=direction == "desc",
            order_by=order_by,
            starting_from=cursor,
            environment_id=environment_id,
            run_type=run_type,
            run_status=run_status,
            detail=detail == "true",
        )
        self.send_json(200, page)

    # --- nodes and jobs ---

    def _environment_nodes(self):
        self.require_token()
        refusal = self.state.read_refusal(self.path_args[0])
        if refusal is not None:
            raise refusal
        return self.state.nodes(self.path_args[0])

    def handle_list_nodes(self) -> None:
        """GET /api/v1/environments/{id}/nodes: summaries, or full nodes with detail=true.
        Without `limit` every node comes in one answer; with it, pages in id order with
        `startingFrom` (exclusive) and `next`, as the MCP server reads them."""
        nodes = sorted(self._environment_nodes(), key=lambda n: n.id)
        detail = (self.query_value("detail") or "false").lower() == "true"
        limit = _int_param(self.query_value("limit"), "limit", None)
        after = self.query_value("startingFrom") or ""
        if limit is not None and not 1 <= limit <= NODES_MAX_LIMIT:
            raise bad_request(f"limit must be between 1 and {NODES_MAX_LIMIT}")
        if after:
            nodes = [n for n in nodes if n.id > after]
        page = nodes if limit is None else nodes[:limit]
        more = limit is not None and len(nodes) > limit
        data = [n.detail() if detail else n.summary() for n in page]
        self.send_json(200, {"data": data, "next": page[-1].id if more else None})

    def handle_get_node(self) -> None:
        node = next((n for n in self._environment_nodes() if n.id == self.path_args[1]), None)
        if node is None:
            raise SimError(404, f"node {self.path_args[1]} not found")
        self.send_json(200, node.detail())

    def handle_get_job(self) -> None:
        """GET /api/v1/environments/{id}/jobs/{jobID}: jobs 101, 102 and 103 exist."""
        self._environment_nodes()
        job = self.state.job(self.path_args[1])
        if job is None:
            raise SimError(404, f"job {self.path_args[1]} not found")
        self.send_json(200, job)

    # --- simulator controls ---

    def handle_calls(self) -> None:
        self.send_json(200, self.state.calls_snapshot())

    def handle_calls_total(self) -> None:
        self.send_json(200, {"total": self.state.total_calls()})

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

    def handle_advance(self) -> None:
        body = self.read_json()
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
            raise bad_request('send {"seconds": N} with N >= 0')
        self.state.advance(seconds)
        self.send_json(200, {"now": self.state.now_iso()})

    def handle_create_runs(self) -> None:
        count, environment_ids, job_id = validate_bulk(self.read_json())
        runs = self.state.create_runs(count, environment_ids, job_id)
        self.send_json(200, {"runCounters": [run.run_counter for run in runs]})


def _int_param(raw: str | None, name: str, default: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"{name} must be an integer") from exc


ROUTES: dict[str, dict[str, Callable[[SimulatorHandler], None]]] = {
    "/scheduler/startRun": {"POST": SimulatorHandler.handle_start_run},
    "/scheduler/rerun": {"POST": SimulatorHandler.handle_rerun},
    "/scheduler/cancelRun": {"POST": SimulatorHandler.handle_cancel_run},
    "/scheduler/runStatus": {"GET": SimulatorHandler.handle_run_status},
    "/api/v1/runs": {"GET": SimulatorHandler.handle_list_runs},
    RUN_TEMPLATE: {"GET": SimulatorHandler.handle_get_run},
    RESULTS_TEMPLATE: {"GET": SimulatorHandler.handle_get_results},
    ENVIRONMENT_TEMPLATE: {"GET": SimulatorHandler.handle_get_environment},
    NODES_TEMPLATE: {"GET": SimulatorHandler.handle_list_nodes},
    NODE_TEMPLATE: {"GET": SimulatorHandler.handle_get_node},
    JOB_TEMPLATE: {"GET": SimulatorHandler.handle_get_job},
    "/_sim/calls": {"GET": SimulatorHandler.handle_calls},
    "/_sim/calls/total": {"GET": SimulatorHandler.handle_calls_total},
    "/_sim/requests": {"GET": SimulatorHandler.handle_requests},
    "/_sim/reset": {"POST": SimulatorHandler.handle_reset},
    "/_sim/advance": {"POST": SimulatorHandler.handle_advance},
    "/_sim/runs": {"POST": SimulatorHandler.handle_create_runs},
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
    run_seconds: float = DEFAULT_RUN_SECONDS,
    clock: Callable[[], float] | None = None,
    first_run_counter: int = 1,
    node_count: int = DEFAULT_NODE_COUNT,
) -> SimulatorServer:
    """Bind (port 0 picks a free port) but don't serve; call ``serve_forever`` on the result.

    ``behaviours`` maps environment IDs to modes from ``MODES`` and survives ``/_sim/reset``.
    ``run_seconds`` is how long a run takes from start to its final state; ``clock`` returns
    seconds since the epoch (default ``time.time``; pass a frozen one and call
    ``server.state.advance()`` for deterministic tests). Raises ``ValueError`` for an unknown
    mode or a negative run_seconds. ``server.state`` is the ``SimulatorState``.
    ``first_run_counter`` is the first runCounter handed out (also after a reset).
    ``node_count`` is the size of every environment's node catalogue (7 to 10,000).
    """
    state = SimulatorState(
        token=token,
        behaviours=behaviours,
        hang_seconds=hang_seconds,
        run_seconds=run_seconds,
        clock=clock,
        node_count=node_count,
    )
    state.first_run_counter = state.next_counter = first_run_counter
    server = SimulatorServer((host, port), SimulatorHandler)
    server.state = state
    bound_host, bound_port = server.server_address[:2]
    state.base_url = f"http://{bound_host}:{bound_port}"
    return server
