"""A local stand-in for the Coalesce API (in the spirit of stripe-mock), standard library only.

It serves the slice of the API the dashboard uses (Coalesce's public API reference):

- ``POST /scheduler/startRun``   validates the body strictly (2.1), answers ``{"runCounter": N}``;
- ``POST /scheduler/rerun``      ``{runDetails: {runID: "<counter>"}, userCredentials}`` (2.2):
  a new run with ``reRunID`` = the original, running only the original's failed nodes, which
  now succeed. Only a ``failed`` run can be rerun (400 otherwise, or for an unknown run);
- ``POST /scheduler/cancelRun``  ``{runID: int, orgID, environmentID}`` (2.3): 204 and the run
  becomes ``canceled`` if it is ``waitingToRun`` or ``running``; 400 otherwise, for a missing
  or mistyped field, an unknown run, or an environmentID that is not the run's;
- ``GET  /scheduler/runStatus?runCounter=N``  ``{runStatus, runType, runLink}`` (2.4);
- ``GET  /api/v1/runs``          the list (3.1): filters environmentID, runStatus, runType;
  orderBy id|runStartTime|runEndTime, orderByDirection, limit (default 25, 0..1000),
  startingFrom (exclusive; a run ID for ``id``, an ISO 8601 time otherwise), detail=true for
  RunInfo objects. ``next`` (the cursor to pass back as startingFrom) is present only when
  more runs match. Ordering by runEndTime lists only runs that have ended;
- ``GET  /api/v1/runs/{runID}``  RunInfo (3.2); ``GET /api/v1/runs/{runID}/results``
  ``{"data": [RunResult]}`` (3.3). Both 404 (envelope) for an unknown run.

Every one of those needs ``Authorization: Bearer <token>`` exactly. Errors use Coalesce's
envelope ``{"error": {"errorString", "errorDetail"}}`` (section 1.3).

**Progress.** A run's status is derived from the simulator's clock when it is read (no
threads): ``waitingToRun`` for the first 15% of ``run_seconds`` (``make_server(run_seconds=)``,
``--run-seconds``, default 6), then ``running``, then its final state, with ``runEndTime`` =
start + run_seconds. Its nodes run one after another during the running part, each in two
stages ("Create Table", then "Insert <NAME>"); results list the nodes started so far, the
current one with ``isRunning``. The clock is ``clock()`` (seconds since the epoch, default
``time.time``) plus an offset that ``state.advance(seconds)`` or ``POST /_sim/advance
{"seconds": N}`` moves forward: pass a frozen ``clock`` and advance it for instant,
deterministic tests. Each new run starts at least 1 ms after the previous one, so start
times are unique and order like run IDs (so with a frozen clock, advance a little past
run_seconds to finish several runs started at once). End times can tie only between runs
canceled in the same millisecond; the cursor being exclusive, a page boundary inside such a
tie would skip the rest of it.

**Outcomes** depend only on the IDs given at start. Every run has the five nodes in
``NODES``. A run whose environment ID or job ID ends in ``-fails``, or whose job ID is
``13``, is ``failed``: FCT_ORDERS and FCT_REVENUE fail (``FAILED_NODES``: an ``error`` with
errorString/errorDetail, ``success: false``), the other three succeed, and the run has a
``runFailureReason``. Every other run completes, and so does every rerun. A canceled run
ends when canceled; its results hold the nodes finished by then plus the interrupted one.
``forceIgnoreWorkspaceStatus`` changes nothing. The shapes of status words inside results
("Success", "Failed", "Running", "Canceled"; runState "complete", "failed", ...) are a
guess: the contract marks them unknown.

**Misbehaviour** is chosen per environment ID (see ``MODES``), so one simulator can serve a
healthy environment and a failing one side by side. Environment IDs ``fail-<mode>``
misbehave without any configuration, which lets demo profiles show failures out of the box.
The startRun modes apply to startRun and to a rerun of a run in that environment. The
``http429-reads*`` modes apply only to reads: runStatus, a run, its results (by the run's
environment) and the list when filtered by ``environmentID``; startRun stays normal.
cancelRun ignores every mode.

Test and demo helpers live under ``/_sim/``, need no token (the server is meant for
127.0.0.1 only) and are not counted: ``GET /_sim/calls`` (``{"METHOD /path": n}``, with
``/api/v1/runs/{id}`` and ``/api/v1/runs/{id}/results`` as templates), ``GET
/_sim/calls/total``, ``GET /_sim/requests`` (startRun and rerun bodies, secrets masked),
``GET|POST /_sim/behaviours``, ``POST /_sim/reset``, ``POST /_sim/advance``, and ``POST
/_sim/runs {"count": N, "environmentIDs": [...], "jobID": "1"}`` which creates N runs at once
(environments taken in turn) and answers ``{"runCounters": [...]}``.

All mutable state sits in one ``SimulatorState`` guarded by one lock; what a request sees is
computed under it.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_pem_private_key

logger = logging.getLogger(__name__)

NORMAL = "normal"
READ_MODES = ("http429-reads", "http429-reads-alternate")
# What each mode does. The rule for runs: a 200 answer means Coalesce accepted the run, so
# 200-answering modes store it; the others don't.
MODES: dict[str, str] = {
    "http500": "startRun/rerun: 500 with an HTML body, as a proxy in front of Coalesce would send",
    "http429": "startRun/rerun: 429 with Retry-After: 7 and the JSON envelope",
    "timeout": "startRun/rerun: stores the run, then waits hang_seconds before answering 200",
    "badjson": "startRun/rerun: stores the run, answers 200 with truncated JSON",
    "nocounter": "startRun/rerun: stores the run, answers 200 with {}",
    "http400": "startRun/rerun: 400 '400: Environment is not deployed'",
    "unauthorized": "startRun/rerun: 401 as for a bad token",
    "http429-reads": "reads: every one answered 429 with Retry-After: 1",
    "http429-reads-alternate": "reads: the 1st, 3rd, 5th... answered 429 (Retry-After: 1)",
}
FAIL_PREFIX = "fail-"
READ_RETRY_AFTER = "1"
TOO_MANY_REQUESTS = "429: Too many requests, please retry later."

AUTH_ERROR = "401: Unable to authenticate, please ensure your token is valid."
MAX_BODY_BYTES = 1024 * 1024
KEPT_REQUESTS = 50
RUNS_DEFAULT_LIMIT = 25
RUNS_MAX_LIMIT = 1000
RUNS_ORDER_BY = ("id", "runStartTime", "runEndTime")
RUN_STATUSES = ("canceled", "completed", "failed", "running", "waitingToRun")
RUN_TYPES = ("deploy", "refresh")
CANCELABLE = frozenset({"waitingToRun", "running"})
DEFAULT_RUN_SECONDS = 6.0
WAIT_PERCENT = 15  # of run_seconds spent waitingToRun
CREATE_PERCENT = 30  # of a node's time spent in its "Create Table" stage
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
SIM_ACCOUNT = "SIMULATED_ACCOUNT"
DEFAULT_WAREHOUSE = "COMPUTE_WH"

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


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def ms_iso(ms: int) -> str:
    return utc_iso(ms_datetime(ms))


def iso_micros(text: str) -> int:
    """Microseconds since the epoch from ISO 8601 ("Z", an offset, or none for UTC)."""
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)  # ValueError when it is no time
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


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


# --- nodes and outcomes --------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    name: str
    location: str
    select: str  # what the Insert stage selects
    rows: int  # rows a successful Insert adds (plus run_counter % 97, so runs differ)


NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        "STG_ORDERS", "STAGING", "ORDER_ID, CUSTOMER_ID, ORDER_TOTAL FROM RAW.SHOP.ORDERS", 15_000
    ),
    NodeSpec(
        "STG_CUSTOMERS", "STAGING", "CUSTOMER_ID, NAME, SEGMENT FROM RAW.SHOP.CUSTOMERS", 1_500
    ),
    NodeSpec(
        "DIM_CUSTOMER", "MART", "CUSTOMER_ID, NAME, SEGMENT FROM STAGING.STG_CUSTOMERS", 1_500
    ),
    NodeSpec("FCT_ORDERS", "MART", "ORDER_ID, CUSTOMER_ID, AMOUNT FROM STAGING.STG_ORDERS", 15_000),
    NodeSpec("FCT_REVENUE", "MART", "ORDER_DATE, SUM(AMOUNT) FROM MART.FCT_ORDERS GROUP BY 1", 365),
)
NODE_NAMES = tuple(node.name for node in NODES)
NODE_SPECS = {node.name: node for node in NODES}
# (errorString, errorDetail) of the nodes that fail in a failing run, in node order.
FAILED_NODES: dict[str, tuple[str, str]] = {
    "FCT_ORDERS": (
        "SQL compilation error: invalid identifier 'AMOUNT'",
        "SQL compilation error: error line 1 at position 64\ninvalid identifier 'AMOUNT'",
    ),
    "FCT_REVENUE": (
        "SQL compilation error: Object 'ANALYTICS.MART.FCT_ORDERS' does not exist or not "
        "authorized.",
        "SQL compilation error:\nObject 'ANALYTICS.MART.FCT_ORDERS' does not exist or not "
        "authorized.",
    ),
}
CANCELED_ERROR = ("SQL execution canceled", "SQL execution canceled: the run was canceled")
FAILING_SUFFIX = "-fails"
FAILING_JOB_IDS = frozenset({"13"})
NODE_ID_NAMESPACE = uuid.UUID("5b0c1f2e-3d4a-4b6c-8e9f-0a1b2c3d4e5f")


def fails(environment_id: str, job_id: str | None) -> bool:
    """The outcome hint: does a run started with these IDs fail two of its nodes?"""
    return environment_id.endswith(FAILING_SUFFIX) or (
        job_id is not None and (job_id.endswith(FAILING_SUFFIX) or job_id in FAILING_JOB_IDS)
    )


def _wall_ms() -> int:
    return int(time.time() * 1000)


# --- runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A stretch of a run's time, in ms since the epoch: from ``start`` until ``end``."""

    start: int
    end: int

    def split(self, percent: int) -> tuple[Window, Window]:
        """The first ``percent`` of the window and the rest."""
        middle = self.start + (self.end - self.start) * percent // 100
        return Window(self.start, middle), Window(middle, self.end)


@dataclass(eq=False)
class SimRun:
    """One accepted run. Credentials are deliberately not part of it, only their names.

    Times are integer milliseconds since the epoch. Views (``status_at``, ``summary_at``,
    ``info_at``, ``results_at``) are pure functions of the time ``now``; the state calls them
    under its lock. ``status`` and ``started_at`` are conveniences for tests.
    """

    run_counter: int
    environment_id: str
    job_id: str | None = None
    include_nodes_selector: str | None = None
    exclude_nodes_selector: str | None = None
    parallelism: int | None = None
    force_ignore_workspace_status: bool | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    run_type: str = "refresh"
    started_ms: int = field(default_factory=_wall_ms)
    run_ms: int = int(DEFAULT_RUN_SECONDS * 1000)
    nodes: tuple[str, ...] = NODE_NAMES
    failing_nodes: tuple[str, ...] = ()
    rerun_of: int | None = None
    canceled_ms: int | None = None
    credentials: dict[str, str] = field(default_factory=dict)
    clock: Callable[[], int] = field(default=_wall_ms, repr=False)

    @property
    def started_at(self) -> datetime:
        return ms_datetime(self.started_ms)

    @property
    def status(self) -> str:
        return self.status_at(self.clock())

    @property
    def wait_ms(self) -> int:
        return self.run_ms * WAIT_PERCENT // 100

    def status_at(self, now: int) -> str:
        if self.canceled_ms is not None and now >= self.canceled_ms:
            return "canceled"
        elapsed = now - self.started_ms
        if elapsed < self.wait_ms:
            return "waitingToRun"
        if elapsed < self.run_ms:
            return "running"
        return "failed" if self.failing_nodes else "completed"

    def end_ms_at(self, now: int) -> int | None:
        if self.canceled_ms is not None and now >= self.canceled_ms:
            return self.canceled_ms
        end = self.started_ms + self.run_ms
        return end if now >= end else None

    def summary_at(self, now: int) -> dict[str, Any]:
        """A RunSummary as ``GET /api/v1/runs`` lists it."""
        status = self.status_at(now)
        summary: dict[str, Any] = {
            "id": self.run_counter,
            "runType": self.run_type,
            "runStatus": status,
            "runStartTime": ms_iso(self.started_ms),
            "environmentID": self.environment_id,
        }
        self._add_common(summary, now, status)
        return summary

    def info_at(self, now: int) -> dict[str, Any]:
        """A RunInfo, as ``GET /api/v1/runs/{id}`` (and the list with detail=true) answer."""
        status = self.status_at(now)
        details: dict[str, Any] = {"environmentID": self.environment_id}
        if self.job_id is not None and self.job_id.isascii() and self.job_id.isdigit():
            details["jobID"] = int(self.job_id)  # RunInfo types jobID as an integer
        for key, value in (
            ("includeNodesSelector", self.include_nodes_selector),
            ("excludeNodesSelector", self.exclude_nodes_selector),
            ("parallelism", self.parallelism),
            ("forceIgnoreEnvironmentStatus", self.force_ignore_workspace_status),
        ):
            if value is not None:
                details[key] = value
        details["canceled"] = status == "canceled"
        details["nodesInRun"] = len(self.nodes)
        info: dict[str, Any] = {
            "id": self.run_counter,
            "runType": self.run_type,
            "runStatus": status,
            "runStartTime": ms_iso(self.started_ms),
            "environmentID": self.environment_id,
            "runDetails": details,
            "runTimeParameters": dict(self.parameters),
        }
        if self.credentials.get("snowflakeUsername"):
            info["userCredentials"] = {"snowflakeAccount": SIM_ACCOUNT, **self.credentials}
        self._add_common(info, now, status)
        return info

    def _add_common(self, view: dict[str, Any], now: int, status: str) -> None:
        end = self.end_ms_at(now)
        if end is not None:
            view["runEndTime"] = ms_iso(end)
        if self.rerun_of is not None:
            view["reRunID"] = str(self.rerun_of)
        if status == "failed":
            view["runFailureReason"] = (
                f"{len(self.failing_nodes)} of {len(self.nodes)} nodes failed: "
                + ", ".join(self.failing_nodes)
            )

    def results_at(self, now: int) -> list[dict[str, Any]]:
        """RunResults for the nodes started by ``now`` (or by the cancel), in run order."""
        canceled = self.canceled_ms is not None and now >= self.canceled_ms
        cut = self.canceled_ms if canceled else now
        results = []
        for index, name in enumerate(self.nodes):
            window = self._node_window(index)
            if cut < window.start:
                break
            results.append(self._node_result(NODE_SPECS[name], window, cut=cut, canceled=canceled))
        return results

    def _node_window(self, index: int) -> Window:
        begin = self.started_ms + self.wait_ms
        span, count = self.run_ms - self.wait_ms, len(self.nodes)
        return Window(begin + span * index // count, begin + span * (index + 1) // count)

    def _node_result(
        self, node: NodeSpec, window: Window, *, cut: int, canceled: bool
    ) -> dict[str, Any]:
        """A node's RunResult as seen at ``cut``: "Create Table", then "Insert <NAME>"."""
        table = f"ANALYTICS.{node.location}.{node.name}"
        create, insert = window.split(CREATE_PERCENT)
        failure = FAILED_NODES[node.name] if node.name in self.failing_nodes else None
        stages = [
            self._stage(
                node,
                "Create Table",
                create,
                sql=f"CREATE OR REPLACE TABLE {table} AS SELECT {node.select} LIMIT 0",
                cut=cut,
                canceled=canceled,
            ),
            self._stage(
                node,
                f"Insert {node.name}",
                insert,
                sql=f"INSERT INTO {table} SELECT {node.select}",
                cut=cut,
                canceled=canceled,
                failure=failure,
                rows=node.rows + self.run_counter % 97,
            ),
        ]
        stages = [stage for stage in stages if stage is not None]
        return {
            "nodeID": str(uuid.uuid5(NODE_ID_NAMESPACE, f"{self.environment_id}/{node.name}")),
            "name": node.name,
            "isRunning": any(stage["isRunning"] for stage in stages),
            "runState": _node_state(stages),
            "origin": "API",
            "queryResults": stages,
        }

    def _stage(
        self,
        node: NodeSpec,
        name: str,
        window: Window,
        *,
        sql: str,
        cut: int,
        canceled: bool,
        failure: tuple[str, str] | None = None,
        rows: int = 0,
    ) -> dict[str, Any] | None:
        """One query of a node as seen at ``cut`` (None if not started by then).

        Finished by ``cut``: a success adding ``rows``, or ``failure`` (errorString,
        errorDetail). Otherwise canceled at ``cut`` when ``canceled``, else still running.
        """
        if cut < window.start:
            return None
        stage: dict[str, Any] = {
            "name": name,
            "sql": sql,
            "startTime": ms_iso(window.start),
            "rowsInserted": 0,
            "rowsUpdated": 0,
            "rowsDeleted": 0,
            "queryID": str(uuid.uuid5(NODE_ID_NAMESPACE, f"{self.run_counter}/{node.name}/{name}")),
            "warehouse": self.credentials.get("snowflakeWarehouse") or DEFAULT_WAREHOUSE,
        }
        if cut >= window.end:  # finished
            stage.update(isRunning=False, success=failure is None, endTime=ms_iso(window.end))
            if failure is None:
                stage.update(status="Success", rowsInserted=rows)
            else:
                stage.update(status="Failed", error=_error(*failure))
        elif canceled:
            stage.update(
                isRunning=False,
                success=False,
                status="Canceled",
                endTime=ms_iso(cut),
                error=_error(*CANCELED_ERROR),
            )
        else:
            stage.update(isRunning=True, success=False, status="Running")
        return stage


def _node_state(stages: list[dict[str, Any]]) -> str:
    """A node's runState from its stages: running, canceled, failed or complete."""
    if any(stage["isRunning"] for stage in stages):
        return "running"
    if any(stage["status"] == "Canceled" for stage in stages):
        return "canceled"
    if any(not stage["success"] for stage in stages):
        return "failed"
    return "complete"


def _error(string: str, detail: str) -> dict[str, str]:
    return {"errorString": string, "errorDetail": detail}


# --- state -------------------------------------------------------------------------------


class SimulatorState:
    """Runs, counters, behaviours, the clock and received requests, all behind ``self.lock``.

    Every public method takes the lock itself, so handlers (one thread per request) can
    call them freely. Behaviours given at start survive ``reset()``; runtime ones do not.
    ``clock`` returns seconds since the epoch (default ``time.time``); ``advance()`` moves
    the simulator's time forward on top of it.
    """

    def __init__(
        self,
        token: str = "sim-token",
        behaviours: dict[str, str] | None = None,
        hang_seconds: float = 60.0,
        run_seconds: float = DEFAULT_RUN_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        for environment_id, mode in (behaviours or {}).items():
            check_mode(environment_id, mode)
        if not run_seconds >= 0:  # also refuses NaN
            raise ValueError("run_seconds must be >= 0")
        self.token = token
        self.hang_seconds = hang_seconds
        self.run_seconds = run_seconds
        self.clock = clock or time.time
        self.base_url = ""  # set by make_server once the port is known
        self.lock = threading.Lock()
        # Set when the server closes, so a "timeout" hang ends with it instead of later.
        self.closing = threading.Event()
        self._startup_behaviours = dict(behaviours or {})
        self._reset_unlocked()

    def _reset_unlocked(self) -> None:
        self.runs: dict[int, SimRun] = {}
        self._ordered: list[SimRun] = []  # by run_counter, which is also start-time order
        self.next_counter = getattr(self, "first_run_counter", 1)
        self._last_start_ms: int | None = None
        self._offset_ms = 0
        self.behaviours: dict[str, str] = dict(self._startup_behaviours)
        self.calls: Counter[str] = Counter()
        self.requests: deque[dict[str, Any]] = deque(maxlen=KEPT_REQUESTS)
        self._reads: Counter[str] = Counter()  # per environment, for http429-reads-alternate

    def reset(self) -> None:
        """Forget runs, counters, calls, received requests, runtime behaviours and advances."""
        with self.lock:
            self._reset_unlocked()

    # --- time ---

    def now_ms(self) -> int:
        """The simulator's time: ``clock()`` plus every ``advance()``, in ms since the epoch."""
        return int(self.clock() * 1000) + self._offset_ms

    def now_iso(self) -> str:
        return ms_iso(self.now_ms())

    def advance(self, seconds: float) -> None:
        """Move the simulator's time forward (runs progress as if that time had passed)."""
        if not seconds >= 0:
            raise ValueError("seconds must be >= 0")
        with self.lock:
            self._offset_ms += round(seconds * 1000)

    # --- behaviours ---

    def set_behaviour(self, environment_id: str, mode: str) -> None:
        """Make ``environment_id`` misbehave; "" or "normal" makes it behave.

        "normal" is stored rather than dropped, so it also heals a ``fail-`` environment or
        one configured at start (until the next reset).
        """
        mode = mode or NORMAL
        check_mode(environment_id, mode)
        with self.lock:
            self.behaviours[environment_id] = mode
            self._reads.pop(environment_id, None)  # "alternate" starts again with a 429

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

    def read_refusal(self, environment_id: str) -> SimError | None:
        """The 429 a read concerning this environment gets under an ``http429-reads*`` mode."""
        mode = self.behaviour_for(environment_id)
        if mode not in READ_MODES:
            return None
        if mode == "http429-reads-alternate":
            with self.lock:
                self._reads[environment_id] += 1
                if self._reads[environment_id] % 2 == 0:
                    return None
        return SimError(429, TOO_MANY_REQUESTS, headers={"Retry-After": READ_RETRY_AFTER})

    # --- calls and requests ---

    def count_call(self, method: str, path: str) -> None:
        with self.lock:
            self.calls[f"{method} {path}"] += 1

    def calls_snapshot(self) -> dict[str, int]:
        """``{"METHOD /path": count}``; run paths counted under their templates."""
        with self.lock:
            return dict(self.calls)

    def total_calls(self) -> int:
        with self.lock:
            return sum(self.calls.values())

    def record_request(self, entry: dict[str, Any]) -> None:
        """Keep a received startRun or rerun (already redacted) for tests to inspect."""
        with self.lock:
            self.requests.append(entry)

    def requests_snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(list(self.requests))

    # --- creating runs ---

    def _add_run_unlocked(self, **fields: Any) -> SimRun:
        # Strictly increasing start times: unique, and ordered like run IDs.
        start = self.now_ms()
        if self._last_start_ms is not None:
            start = max(start, self._last_start_ms + 1)
        run = SimRun(
            run_counter=self.next_counter,
            started_ms=start,
            run_ms=round(self.run_seconds * 1000),
            clock=self.now_ms,
            **fields,
        )
        self.runs[run.run_counter] = run
        self._ordered.append(run)
        self.next_counter += 1
        self._last_start_ms = start
        return run

    def start_run(
        self,
        run_details: dict[str, Any],
        parameters: dict[str, str],
        *,
        credentials: dict[str, str] | None = None,
    ) -> SimRun:
        """Store a new run under the next runCounter (one sequence for all environments).

        ``credentials`` holds names only (auth type, user, warehouse, role), never secrets.
        """
        environment_id = run_details["environmentID"]
        job_id = run_details.get("jobID")
        with self.lock:
            return self._add_run_unlocked(
                environment_id=environment_id,
                job_id=job_id,
                include_nodes_selector=run_details.get("includeNodesSelector"),
                exclude_nodes_selector=run_details.get("excludeNodesSelector"),
                parallelism=run_details.get("parallelism"),
                force_ignore_workspace_status=run_details.get("forceIgnoreWorkspaceStatus"),
                parameters=dict(parameters),
                failing_nodes=tuple(FAILED_NODES) if fails(environment_id, job_id) else (),
                credentials=dict(credentials or {}),
            )

    def create_runs(
        self, count: int, environment_ids: list[str], job_id: str | None = None
    ) -> list[SimRun]:
        """Start ``count`` runs at once (environments taken in turn), as startRun would."""
        if count < 1 or not environment_ids:
            raise ValueError("count must be >= 1 and environment_ids non-empty")
        created = []
        with self.lock:
            for index in range(count):
                environment_id = environment_ids[index % len(environment_ids)]
                failing = tuple(FAILED_NODES) if fails(environment_id, job_id) else ()
                created.append(
                    self._add_run_unlocked(
                        environment_id=environment_id, job_id=job_id, failing_nodes=failing
                    )
                )
        return created

    def _rerunnable_unlocked(self, run_id: int) -> SimRun:
        original = self.runs.get(run_id)
        if original is None:
            raise bad_request(f"run {run_id} not found")
        status = original.status_at(self.now_ms())
        if status != "failed":
            raise bad_request(f"run {run_id} is {status}: only a failed run can be rerun")
        return original

    def check_rerunnable(self, run_id: int) -> SimRun:
        """The original run if it can be rerun (it exists and failed), else a 400 SimError."""
        with self.lock:
            return self._rerunnable_unlocked(run_id)

    def rerun(
        self,
        run_id: int,
        *,
        parameters: dict[str, str] | None = None,
        force_ignore_workspace_status: bool | None = None,
        credentials: dict[str, str] | None = None,
    ) -> SimRun:
        """A new run of the failed nodes of run ``run_id``, which will all succeed.

        Environment, job, selectors and parallelism come from the original; so do its
        parameters unless ``parameters`` is given. Raises a 400 SimError like the endpoint.
        """
        with self.lock:
            original = self._rerunnable_unlocked(run_id)
            return self._add_run_unlocked(
                environment_id=original.environment_id,
                job_id=original.job_id,
                include_nodes_selector=original.include_nodes_selector,
                exclude_nodes_selector=original.exclude_nodes_selector,
                parallelism=original.parallelism,
                force_ignore_workspace_status=force_ignore_workspace_status,
                parameters=dict(original.parameters if parameters is None else parameters),
                nodes=original.failing_nodes,
                rerun_of=original.run_counter,
                credentials=dict(credentials or original.credentials),
            )

    def cancel_run(self, run_id: int, environment_id: str) -> SimRun:
        """Cancel a waitingToRun or running run now; a 400 SimError otherwise."""
        with self.lock:
            run = self.runs.get(run_id)
            if run is None:
                raise bad_request(f"run {run_id} not found")
            if run.environment_id != environment_id:
                raise bad_request(f"run {run_id} does not belong to that environmentID")
            now = self.now_ms()
            status = run.status_at(now)
            if status not in CANCELABLE:
                raise bad_request(
                    f"run {run_id} is {status}: only a waitingToRun or running run can be canceled"
                )
            run.canceled_ms = now
            return run

    # --- reading runs ---

    def get_run(self, run_counter: int) -> SimRun | None:
        with self.lock:
            return self.runs.get(run_counter)

    def run_status(self, run_counter: int) -> str | None:
        with self.lock:
            run = self.runs.get(run_counter)
            return None if run is None else run.status_at(self.now_ms())

    def run_info(self, run_counter: int) -> dict[str, Any] | None:
        """The RunInfo of a run, or None if there is no such run."""
        with self.lock:
            run = self.runs.get(run_counter)
            return None if run is None else run.info_at(self.now_ms())

    def run_results(self, run_counter: int) -> list[dict[str, Any]] | None:
        """The RunResults of a run so far, or None if there is no such run."""
        with self.lock:
            run = self.runs.get(run_counter)
            return None if run is None else run.results_at(self.now_ms())

    def list_page(
        self,
        *,
        limit: int = RUNS_DEFAULT_LIMIT,
        descending: bool = True,
        order_by: str = "id",
        starting_from: int | None = None,
        environment_id: str | None = None,
        run_type: str | None = None,
        run_status: str | None = None,
        detail: bool = False,
    ) -> dict[str, Any]:
        """The ``GET /api/v1/runs`` answer. ``starting_from`` is already parsed
        (``parse_cursor``). ``next`` is set only when more runs match after this page."""
        with self.lock:
            now = self.now_ms()
            runs, more = self._select_unlocked(
                limit,
                descending,
                order_by,
                starting_from,
                environment_id,
                run_type,
                run_status,
                now,
            )
            page: dict[str, Any] = {
                "data": [run.info_at(now) if detail else run.summary_at(now) for run in runs],
                "limit": limit,
                "orderBy": order_by,
                "orderByDirection": "desc" if descending else "asc",
            }
            if more and runs:
                last = runs[-1]
                if order_by == "id":
                    page["next"] = last.run_counter
                elif order_by == "runStartTime":
                    page["next"] = ms_iso(last.started_ms)
                else:
                    page["next"] = ms_iso(last.end_ms_at(now) or 0)
            return page

    def _select_unlocked(
        self,
        limit: int,
        descending: bool,
        order_by: str,
        cursor: int | None,
        environment_id: str | None,
        run_type: str | None,
        run_status: str | None,
        now: int,
    ) -> tuple[list[SimRun], bool]:
        """Up to ``limit`` matching runs, and whether more match. One pass, no sort except
        for runEndTime: run IDs and start times are both in ``self._ordered`` order."""
        selected: list[SimRun] = []
        for run in self._in_order(order_by, descending, cursor, now):
            if environment_id is not None and run.environment_id != environment_id:
                continue
            if run_type is not None and run.run_type != run_type:
                continue
            if run_status is not None and run.status_at(now) != run_status:
                continue
            if len(selected) >= limit:
                return selected, True
            selected.append(run)
        return selected, False

    def _in_order(
        self, order_by: str, descending: bool, cursor: int | None, now: int
    ) -> Iterator[SimRun]:
        runs = self._ordered
        if order_by == "runEndTime":
            # Only runs that have ended have a runEndTime to order by.
            ended = sorted(
                (
                    (end * 1000, run.run_counter, run)
                    for run in runs
                    if (end := run.end_ms_at(now)) is not None
                ),
                key=lambda item: item[:2],
                reverse=descending,
            )
            for end_us, _, run in ended:
                if cursor is None or (end_us < cursor if descending else end_us > cursor):
                    yield run
            return
        key: Callable[[SimRun], int] = (
            (lambda run: run.run_counter)
            if order_by == "id"
            else (lambda run: run.started_ms * 1000)
        )
        low, high = 0, len(runs)
        if cursor is not None:
            if descending:
                high = bisect_left(runs, cursor, key=key)
            else:
                low = bisect_right(runs, cursor, key=key)
        indices: Iterable[int] = range(high - 1, low - 1, -1) if descending else range(low, high)
        for index in indices:
            yield runs[index]


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
    # Non-secret userCredentials (auth type, user, warehouse, role), echoed by RunInfo.
    credential_names: dict[str, str] = field(default_factory=dict)
    # For a rerun: the original run, and whether parameters were sent.
    rerun_of: int | None = None
    parameters_given: bool = True


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


def validate_rerun(body: Any) -> StartRunRequest:
    """Check a rerun body against contract 2.2 (runID a string, userCredentials required)."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    unknown = sorted(set(body) - TOP_LEVEL_KEYS)
    if unknown:
        raise bad_request(f"unknown top-level field(s): {', '.join(unknown)}")
    details = body.get("runDetails")
    if not isinstance(details, dict):
        raise bad_request("runDetails is required and must be an object")
    unknown = sorted(set(details) - RERUN_DETAILS_KEYS)
    if unknown:
        raise bad_request(f"unknown runDetails field(s): {', '.join(unknown)}")
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
    """Check a cancelRun body (contract 2.3, all three fields required); (runID, envID)."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    unknown = sorted(set(body) - CANCEL_KEYS)
    if unknown:
        raise bad_request(f"unknown field(s): {', '.join(unknown)}")
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


# --- HTTP --------------------------------------------------------------------------------

RUN_TEMPLATE = "/api/v1/runs/{id}"
RESULTS_TEMPLATE = "/api/v1/runs/{id}/results"
# Paths with a run ID in them, matched to the template they are routed and counted under.
TEMPLATES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/api/v1/runs/([^/]+)"), RUN_TEMPLATE),
    (re.compile(r"/api/v1/runs/([^/]+)/results"), RESULTS_TEMPLATE),
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
        respond = START_RUN_MODES.get(mode, _answer_normal)
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


# --- startRun and rerun answers, one per mode -----------------------------------------------

StartRunAnswer = Callable[[SimulatorHandler, StartRunRequest, dict[str, Any]], None]


def _accept(handler: SimulatorHandler, request: StartRunRequest, entry: dict[str, Any]) -> int:
    state = handler.state
    if request.rerun_of is None:
        run = state.start_run(
            request.run_details, request.parameters, credentials=request.credential_names
        )
    else:
        try:
            run = state.rerun(
                request.rerun_of,
                parameters=request.parameters if request.parameters_given else None,
                force_ignore_workspace_status=request.run_details.get("forceIgnoreWorkspaceStatus"),
                credentials=request.credential_names,
            )
        except SimError as error:
            state.record_request({**entry, "status": error.status, "error": error.message})
            raise
    state.record_request({**entry, "status": 200, "runCounter": run.run_counter})
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
    _refuse(h, entry, 429, TOO_MANY_REQUESTS, **{"Retry-After": "7"})


def _answer_http400(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    _refuse(h, entry, 400, "400: Environment is not deployed")


def _answer_unauthorized(h: SimulatorHandler, req: StartRunRequest, entry: dict[str, Any]) -> None:
    _refuse(h, entry, 401, AUTH_ERROR)


# Modes not listed here (the http429-reads ones) start runs normally.
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
    "/scheduler/rerun": {"POST": SimulatorHandler.handle_rerun},
    "/scheduler/cancelRun": {"POST": SimulatorHandler.handle_cancel_run},
    "/scheduler/runStatus": {"GET": SimulatorHandler.handle_run_status},
    "/api/v1/runs": {"GET": SimulatorHandler.handle_list_runs},
    RUN_TEMPLATE: {"GET": SimulatorHandler.handle_get_run},
    RESULTS_TEMPLATE: {"GET": SimulatorHandler.handle_get_results},
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
) -> SimulatorServer:
    """Bind (port 0 picks a free port) but don't serve; call ``serve_forever`` on the result.

    ``behaviours`` maps environment IDs to modes from ``MODES`` and survives ``/_sim/reset``.
    ``run_seconds`` is how long a run takes from start to its final state; ``clock`` returns
    seconds since the epoch (default ``time.time``; pass a frozen one and call
    ``server.state.advance()`` for deterministic tests). Raises ``ValueError`` for an unknown
    mode or a negative run_seconds. ``server.state`` is the ``SimulatorState``.
    ``first_run_counter`` is the first runCounter handed out (also after a reset).
    """
    state = SimulatorState(
        token=token,
        behaviours=behaviours,
        hang_seconds=hang_seconds,
        run_seconds=run_seconds,
        clock=clock,
    )
    state.first_run_counter = state.next_counter = first_run_counter
    server = SimulatorServer((host, port), SimulatorHandler)
    server.state = state
    bound_host, bound_port = server.server_address[:2]
    state.base_url = f"http://{bound_host}:{bound_port}"
    return server
