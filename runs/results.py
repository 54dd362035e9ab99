"""Node-level results of a Coalesce run (GET /api/v1/runs/{runID}/results,
docs/coalesce-api.md §5.4).

`parse_results` turns whatever Coalesce answers into `NodeResult`s without ever raising:
the documented shape is `{"data": [RunResult, ...]}`, each RunResult with `queryResults`
(one QueryResult per stage), but fields go missing, statuses are free text, and other
clients (MCP) read the node status from `status` / `runStatus` / `nodeStatus` / `runState`
and the error text from `error.errorString` / `errorMessage` / `message`. Every status
string is kept as Coalesce sent it, so an unknown one is shown rather than crashed on.

Error texts are scrubbed with `runs.redaction.scrub` (Coalesce may echo credentials in a
Snowflake error). SQL is kept as is.

`NodeResult.to_json()` / `NodeResult.from_json()` (and the list helpers `results_to_json` /
`results_from_json`) round-trip through plain dicts with ISO 8601 strings, for a JSONField.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from runs.redaction import scrub

# Node status keys, in the order they are consulted (documented first, then MCP's).
_NODE_STATUS_KEYS = ("runState", "status", "runStatus", "nodeStatus")
_FAILED_WORDS = frozenset({"failed", "failure", "error", "errored"})


# -- small lenient converters (also used by runs.coalesce) ----------------------------------


def parse_datetime(value: Any) -> datetime | None:
    """An aware datetime from an ISO 8601 string ("Z" or an offset); None if unusable.

    A string without an offset is taken as UTC. Anything else (numbers, null, garbage)
    gives None.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def as_text(value: Any) -> str:
    """A string field: str as is, numbers as digits, anything else (null, objects) ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def as_count(value: Any) -> int | None:
    """A non-negative integer (a numeric string or integral float is accepted); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    return value if isinstance(value, int) and value >= 0 else None


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _error_texts(item: Mapping[str, Any]) -> tuple[str, str, bool]:
    """(error text, error detail, is_error) from the error fields of a node or stage.

    `is_error` is True only for text found in `error` or `errorMessage`: a bare `message`
    is used as the text of an otherwise failed item but does not make it failed.
    """
    error = item.get("error")
    string = detail = ""
    if isinstance(error, Mapping):
        string = as_text(error.get("errorString")) or as_text(error.get("message"))
        detail = as_text(error.get("errorDetail"))
    elif isinstance(error, str):
        string = error
    string = string or as_text(item.get("errorMessage"))
    is_error = bool(string.strip() or detail.strip())
    if not string:
        string = as_text(item.get("message"))
    return scrub(string), scrub(detail), is_error


def _sum(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


# -- dataclasses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One query of a node (a QueryResult), e.g. "Insert STG_NATION".

    `status` is Coalesce's own text (or, when missing, "failed"/"running"/"completed"
    derived from `success`/`isRunning`, else ""). `success` is None when not reported.
    Row counts are None when not reported.
    """

    name: str = ""
    status: str = ""
    success: bool | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_deleted: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    duration_seconds: float | None = None
    error_string: str = ""
    error_detail: str = ""
    sql: str = ""
    is_running: bool = False
    has_error: bool = False

    @property
    def failed(self) -> bool:
        """True when the stage carries error text (unless it says success == true), or
        reported success == false after it stopped running. A running stage reports
        success == false (docs/coalesce-api.md §5.4): that is "not finished yet", not a
        failure. An explicit success == true wins: Coalesce's own examples carry
        placeholder error objects on successful stages."""
        if self.success is True:
            return False
        return self.has_error or (self.success is False and not self.is_running)

    @classmethod
    def parse(cls, item: Any, *, default_name: str = "") -> Stage | None:
        """A Stage from one QueryResult object; None if `item` is not an object."""
        if not isinstance(item, Mapping):
            return None
        success = _as_bool(item.get("success"))
        is_running = item.get("isRunning") is True
        error_string, error_detail, has_error = _error_texts(item)
        status = as_text(item.get("status"))
        if not status:
            # Error text first, then "still running" (a running stage says success false).
            if has_error and success is not True:
                status = "failed"
            elif is_running:
                status = "running"
            elif success is False:
                status = "failed"
            elif success is True:
                status = "completed"
        start = parse_datetime(item.get("startTime"))
        end = parse_datetime(item.get("endTime"))
        return cls(
            name=as_text(item.get("name")) or default_name,
            status=status,
            success=success,
            rows_inserted=as_count(item.get("rowsInserted")),
            rows_updated=as_count(item.get("rowsUpdated")),
            rows_deleted=as_count(item.get("rowsDeleted")),
            start=start,
            end=end,
            duration_seconds=_duration(start, end),
            error_string=error_string,
            error_detail=error_detail,
            sql=as_text(item.get("sql")),
            is_running=is_running,
            has_error=has_error,
        )

    def to_json(self) -> dict[str, Any]:
        """A plain dict (datetimes as ISO 8601 strings) that `from_json` reads back."""
        return _dump(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stage:
        """Rebuild a Stage from `to_json()` output; missing keys take their defaults."""
        return cls(**_load(cls, data))


@dataclass(frozen=True)
class NodeResult:
    """One node of a run (a RunResult).

    `status`: "failed" when any stage failed (error text, or success == false once it
    stopped running) or the node itself carries an error; else "running" when the node or
    one of its stages `isRunning`; else Coalesce's own node
    status (`runState`, `status`, `runStatus` or `nodeStatus`, unchanged); else
    "completed". `error` / `failed_sql` come from the first failed stage (or the node's own
    error). `duration_seconds` spans the earliest stage start to the latest stage end.
    Row sums are None when no stage reported that count. `stages` includes the render step
    (`renderQueryResult`) first when Coalesce reports one.
    """

    node_id: str = ""
    name: str = ""
    status: str = "completed"
    stages: list[Stage] = field(default_factory=list)
    error: str = ""
    failed_sql: str = ""
    duration_seconds: float | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_deleted: int | None = None
    has_test_failures: bool = False

    @property
    def failed(self) -> bool:
        """True when the node status says it failed (any casing; "error" counts too)."""
        return self.status.strip().casefold() in _FAILED_WORDS

    @classmethod
    def parse(cls, item: Any) -> NodeResult | None:
        """A NodeResult from one RunResult object; None if `item` is not an object."""
        if not isinstance(item, Mapping):
            return None
        stages: list[Stage] = []
        render = Stage.parse(item.get("renderQueryResult"), default_name="Render")
        if render is not None:
            stages.append(render)
        query_results = item.get("queryResults")
        if isinstance(query_results, list):
            stages += [s for q in query_results if (s := Stage.parse(q)) is not None]

        node_error, node_detail, node_has_error = _error_texts(item)
        failed_stage = next((s for s in stages if s.failed), None)
        raw_status = next(
            (text for key in _NODE_STATUS_KEYS if (text := as_text(item.get(key)).strip())),
            "",
        )
        if failed_stage is not None or node_has_error:
            status = "failed"
        elif item.get("isRunning") is True or any(s.is_running for s in stages):
            status = "running"
        else:
            status = raw_status or "completed"

        error = ""
        if failed_stage is not None:
            error = failed_stage.error_string or failed_stage.error_detail
        if not error and (node_has_error or status.casefold() in _FAILED_WORDS):
            error = node_error or node_detail

        starts = [s.start for s in stages if s.start is not None]
        ends = [s.end for s in stages if s.end is not None]
        duration = _duration(min(starts), max(ends)) if starts and ends else None
        counted = [s for s in stages if s is not render]
        return cls(
            node_id=as_text(item.get("nodeID"))
            or as_text(item.get("nodeId"))
            or as_text(item.get("id")),
            name=as_text(item.get("name")) or as_text(item.get("nodeName")),
            status=status,
            stages=stages,
            error=error,
            failed_sql=failed_stage.sql if failed_stage is not None else "",
            duration_seconds=duration,
            rows_inserted=_sum(s.rows_inserted for s in counted),
            rows_updated=_sum(s.rows_updated for s in counted),
            rows_deleted=_sum(s.rows_deleted for s in counted),
            has_test_failures=item.get("hasTestFailures") is True,
        )

    def to_json(self) -> dict[str, Any]:
        """A plain dict (datetimes as ISO 8601 strings) that `from_json` reads back."""
        return _dump(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeResult:
        """Rebuild a NodeResult from `to_json()` output; missing keys take their defaults."""
        stages = data.get("stages")
        values = _load(cls, data, skip=("stages",))
        values["status"] = values["status"] or "completed"
        return cls(stages=[Stage.from_json(s) for s in (stages if isinstance(stages, list)
                                                        else []) if isinstance(s, Mapping)],
                   **values)


# How each stored field is read back, by its annotation: leniently, as from Coalesce.
_READERS = {
    "str": lambda value: as_text(value),
    "int | None": lambda value: as_count(value),
    "float | None": lambda value: _float_or_none(value),
    "bool": lambda value: value is True,
    "bool | None": lambda value: _as_bool(value),
    "datetime | None": lambda value: parse_datetime(value),
}


def _dump(result) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in fields(result):
        value = getattr(result, item.name)
        if isinstance(value, datetime):
            value = _iso(value)
        elif isinstance(value, list):
            value = [element.to_json() for element in value]
        out[item.name] = value
    return out


def _load(cls, data: Mapping[str, Any], *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {item.name: _READERS[item.type](data.get(item.name))
            for item in fields(cls) if item.name not in skip}


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# -- entry points -----------------------------------------------------------------------


def parse_results(payload: Any) -> list[NodeResult]:
    """The nodes of a results answer, in Coalesce's order. Never raises.

    Accepts `{"data": [RunResult, ...]}` (documented) or a bare list of RunResults; any
    other shape (null, a string, `data` missing or not a list) gives []. Items that are not
    objects are skipped.
    """
    if isinstance(payload, Mapping):
        payload = payload.get("data")
    if not isinstance(payload, list):
        return []
    return [node for item in payload if (node := NodeResult.parse(item)) is not None]


def results_to_json(nodes: Iterable[NodeResult]) -> list[dict[str, Any]]:
    """`NodeResult.to_json()` of each node, for a JSONField."""
    return [node.to_json() for node in nodes]


def results_from_json(data: Any) -> list[NodeResult]:
    """The nodes stored by `results_to_json`; anything that is not a list gives []."""
    if not isinstance(data, list):
        return []
    return [NodeResult.from_json(item) for item in data if isinstance(item, Mapping)]


def failed_first(nodes: Iterable[NodeResult]) -> list[NodeResult]:
    """The nodes with failed ones first, then completed-with-test-failures, then the rest.

    The sort is stable: within each group Coalesce's order is kept.
    """

    def rank(node: NodeResult) -> int:
        if node.failed:
            return 0
        return 1 if node.has_test_failures else 2

    return sorted(nodes, key=rank)


_NOT_DONE_PREFIXES = ("cancel", "wait", "pending", "queued", "running")


@dataclass(frozen=True)
class Progress:
    """How far a run's nodes are: "3 of 5 nodes done · 1 running · 0 failed"."""

    total: int
    done: int
    running: int
    failed: int

    def __str__(self) -> str:
        noun = "node" if self.total == 1 else "nodes"
        return (f"{self.done} of {self.total} {noun} done · {self.running} running · "
                f"{self.failed} failed")


def progress(nodes: Iterable[NodeResult]) -> Progress:
    """Count the nodes: done (finished and not failed), running, failed. A node cancelled
    or still waiting is none of these, so it keeps "done" below the total."""
    total = done = running = failed = 0
    for node in nodes:
        total += 1
        word = node.status.strip().casefold()
        if node.failed:
            failed += 1
        elif word == "running":
            running += 1
        elif not word.startswith(_NOT_DONE_PREFIXES):
            done += 1
    return Progress(total=total, done=done, running=running, failed=failed)
