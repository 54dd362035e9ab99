"""Misbehaviour: the modes an environment can be put in, and the startRun answer per mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coalesce_simulator.errors import AUTH_ERROR, TOO_MANY_REQUESTS, SimError
from coalesce_simulator.validation import StartRunRequest

if TYPE_CHECKING:
    from coalesce_simulator.server import SimulatorHandler

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
HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Internal Server Error</h1></body></html>"
)


def check_mode(environment_id: str, mode: str) -> None:
    if not isinstance(environment_id, str) or not environment_id:
        raise ValueError("environmentID must be a non-empty string")
    if not isinstance(mode, str) or (mode != NORMAL and mode not in MODES):
        raise ValueError(f"unknown mode {mode!r}; use one of: normal, {', '.join(MODES)}")


StartRunAnswer = Callable[["SimulatorHandler", StartRunRequest, dict[str, Any]], None]


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


def start_run_answer(mode: str) -> StartRunAnswer:
    """How startRun and a rerun are answered in ``mode`` (normally for the read modes)."""
    return START_RUN_MODES.get(mode, _answer_normal)
