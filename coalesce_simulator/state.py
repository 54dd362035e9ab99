"""All of the simulator's mutable state behind one lock: runs, behaviours, clock, calls."""

from __future__ import annotations

import copy
import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from coalesce_simulator.catalogue import (
    DEFAULT_NODE_COUNT,
    JOBS,
    MAX_NODE_COUNT,
    SimNode,
    nodes_for,
    select,
)
from coalesce_simulator.clock import ms_iso
from coalesce_simulator.errors import TOO_MANY_REQUESTS, SimError, bad_request
from coalesce_simulator.modes import (
    FAIL_PREFIX,
    MODES,
    NORMAL,
    READ_MODES,
    READ_RETRY_AFTER,
    check_mode,
)
from coalesce_simulator.run import (
    DEFAULT_RUN_SECONDS,
    NODE_NAMES,
    NodeSpec,
    SimRun,
    nodes_to_fail,
    spec_for,
)

KEPT_REQUESTS = 50
RUNS_DEFAULT_LIMIT = 25
CANCELABLE = frozenset({"waitingToRun", "running"})


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
        node_count: int = DEFAULT_NODE_COUNT,
    ) -> None:
        for environment_id, mode in (behaviours or {}).items():
            check_mode(environment_id, mode)
        if not run_seconds >= 0:  # also refuses NaN
            raise ValueError("run_seconds must be >= 0")
        if not 7 <= node_count <= MAX_NODE_COUNT:
            raise ValueError(f"node_count must be between 7 and {MAX_NODE_COUNT}")
        self.node_count = node_count
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
        specs = self._picked_nodes(environment_id, job_id, run_details)
        nodes = tuple(spec.name for spec in specs)
        with self.lock:
            return self._add_run_unlocked(
                nodes=nodes,
                node_specs=specs,
                environment_id=environment_id,
                job_id=job_id,
                include_nodes_selector=run_details.get("includeNodesSelector"),
                exclude_nodes_selector=run_details.get("excludeNodesSelector"),
                parallelism=run_details.get("parallelism"),
                force_ignore_workspace_status=run_details.get("forceIgnoreWorkspaceStatus"),
                parameters=dict(parameters),
                failing_nodes=nodes_to_fail(nodes, environment_id, job_id),
                credentials=dict(credentials or {}),
            )

    # --- nodes and jobs ---

    def nodes(self, environment_id: str) -> tuple[SimNode, ...]:
        """The environment's node catalogue (built once per environment and size)."""
        return nodes_for(environment_id, self.node_count)

    def job(self, job_id: str) -> dict[str, Any] | None:
        found = JOBS.get(str(job_id))
        if found is None:
            return None
        name, include, exclude = found
        return {"id": str(job_id), "name": name, "includeSelector": include,
                "excludeSelector": exclude}

    def _picked_nodes(self, environment_id: str, job_id: Any,
                      run_details: dict[str, Any]) -> tuple[NodeSpec, ...]:
        """What a run refreshes, in catalogue order: the nodes its selectors (its own, else
        its job's) pick, or with nothing selected every node of the environment, as
        Coalesce refreshes them all (and the dashboard's preview says "all N nodes")."""
        include = run_details.get("includeNodesSelector")
        exclude = run_details.get("excludeNodesSelector")
        job = self.job(job_id) if job_id is not None else None
        if not include and not exclude and job is not None:
            include, exclude = job["includeSelector"], job["excludeSelector"]
        catalogue = self.nodes(environment_id)
        picked = select(catalogue, include, exclude) if include or exclude else catalogue
        return tuple(spec_for(node.name, node.location) for node in picked)

    def create_runs(
        self, count: int, environment_ids: list[str], job_id: str | None = None
    ) -> list[SimRun]:
        """Start ``count`` runs at once (environments taken in turn), as startRun would,
        except for their nodes: each run has the five of NODE_NAMES, not the catalogue.

        The benchmarks (bench/sweep.py) and the worker tests create up to thousands of runs
        this way to measure the sweep, which fetches each finished run's results: five
        nodes keep those answers small, so the figures are the sweep's, not JSON parsing's.
        """
        if count < 1 or not environment_ids:
            raise ValueError("count must be >= 1 and environment_ids non-empty")
        created = []
        with self.lock:
            for index in range(count):
                environment_id = environment_ids[index % len(environment_ids)]
                failing = nodes_to_fail(NODE_NAMES, environment_id, job_id)
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
                node_specs=tuple(spec for spec in original.node_specs
                                 if spec.name in original.failing_nodes),
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
