"""One simulated run: its nodes, its outcome, and what the API shows of it at a time."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from coalesce_simulator.clock import ms_datetime, ms_iso, wall_ms

DEFAULT_RUN_SECONDS = 6.0
WAIT_PERCENT = 15  # of run_seconds spent waitingToRun
CREATE_PERCENT = 30  # of a node's time spent in its "Create Table" stage
SIM_ACCOUNT = "SIMULATED_ACCOUNT"
DEFAULT_WAREHOUSE = "COMPUTE_WH"


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
# The nodes of a run made by `create_runs` (a handful, for benchmarks); other runs report
# catalogue nodes, these five among them with the same SQL.
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
# The error of a failing node that has none of its own above.
OTHER_FAILURE = (
    "Numeric value 'n/a' is not recognized",
    "Numeric value 'n/a' is not recognized\nFile 'RAW', line 1, character 9",
)
CANCELED_ERROR = ("SQL execution canceled", "SQL execution canceled: the run was canceled")
FAILING_SUFFIX = "-fails"
FAILING_JOB_IDS = frozenset({"13"})
NODE_ID_NAMESPACE = uuid.UUID("5b0c1f2e-3d4a-4b6c-8e9f-0a1b2c3d4e5f")


def fails(environment_id: str, job_id: str | None) -> bool:
    """The outcome hint: does a run started with these IDs fail (see ``nodes_to_fail``)?"""
    return environment_id.endswith(FAILING_SUFFIX) or (
        job_id is not None and (job_id.endswith(FAILING_SUFFIX) or job_id in FAILING_JOB_IDS)
    )


def nodes_to_fail(nodes: tuple[str, ...], environment_id: str, job_id: str | None
                  ) -> tuple[str, ...]:
    """The nodes a run with these IDs fails: none unless ``fails``; else FCT_ORDERS and
    FCT_REVENUE, or its last node when its selection left both out, so that a failure
    always names nodes the run reports."""
    if not fails(environment_id, job_id):
        return ()
    return tuple(name for name in nodes if name in FAILED_NODES) or nodes[-1:]


def spec_for(name: str, location: str) -> NodeSpec:
    """What a catalogue node runs. The five above keep their SQL (FCT_ORDERS selects the
    AMOUNT its failure names); any other node selects from a source table of its own."""
    return NODE_SPECS.get(name) or NodeSpec(
        name, location, f"* FROM {location}.{name}_SRC", 1_000 + len(name) * 37)


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
    started_ms: int = field(default_factory=wall_ms)
    run_ms: int = int(DEFAULT_RUN_SECONDS * 1000)
    nodes: tuple[str, ...] = NODE_NAMES
    failing_nodes: tuple[str, ...] = ()
    rerun_of: int | None = None
    canceled_ms: int | None = None
    credentials: dict[str, str] = field(default_factory=dict)
    # What `nodes` run, where they are not among NODES.
    node_specs: tuple[NodeSpec, ...] = ()
    clock: Callable[[], int] = field(default=wall_ms, repr=False)

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
            results.append(self._node_result(self._spec(name), window, cut=cut, canceled=canceled))
        return results

    @cached_property
    def _specs(self) -> dict[str, NodeSpec]:
        return {**NODE_SPECS, **{spec.name: spec for spec in self.node_specs}}

    def _spec(self, name: str) -> NodeSpec:
        return self._specs[name]

    def _node_window(self, index: int) -> Window:
        # Each node gets an equal share of the running time, so a run of the whole
        # catalogue (hundreds of nodes) ends when a run of five does: run_ms, always.
        begin = self.started_ms + self.wait_ms
        span, count = self.run_ms - self.wait_ms, len(self.nodes)
        return Window(begin + span * index // count, begin + span * (index + 1) // count)

    def _node_result(
        self, node: NodeSpec, window: Window, *, cut: int, canceled: bool
    ) -> dict[str, Any]:
        """A node's RunResult as seen at ``cut``: "Create Table", then "Insert <NAME>"."""
        table = f"ANALYTICS.{node.location}.{node.name}"
        create, insert = window.split(CREATE_PERCENT)
        failure = None
        if node.name in self.failing_nodes:
            failure = FAILED_NODES.get(node.name, OTHER_FAILURE)
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
