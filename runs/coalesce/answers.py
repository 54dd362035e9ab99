"""What Coalesce's answers become in Python: small frozen dataclasses, and the lenient
parsers that build them from JSON (docs/coalesce-api.md §3.4, §5.1). A value of the wrong
type is skipped or defaulted here, never raised on: one odd item must not lose a page.
"""

from __future__ import annotations

import email.utils
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runs.redaction import scrub
from runs.results import as_count, as_text, parse_datetime
from runs.selectors import NodeRecord

# Coalesce's free text is kept to this many characters.
TEXT_LIMIT = 2000


@dataclass(frozen=True)
class StartedRun:
    """Coalesce accepted a startRun; the run is identified by `run_counter` (= runID)."""

    run_counter: int


@dataclass(frozen=True)
class RunSummary:
    """One run as GET /api/v1/runs lists it (docs/coalesce-api.md §5.1).

    `status` and `run_type` are Coalesce's strings unchanged ("" when missing), so an
    unknown status is shown rather than crashed on. Times are aware datetimes or None when
    missing or unparsable. `rerun_of` is `reRunID` as an int (None when absent or not a
    number). `failure_reason` is scrubbed. `job_id`, `include_selector`,
    `exclude_selector` and `parallelism` come from `runDetails` ("" / None without it,
    which list pages usually leave out unless detail=True); `environment_id` falls back to
    `runDetails.environmentID`.
    """

    run_counter: int
    status: str
    run_type: str
    start_time: datetime | None
    end_time: datetime | None
    environment_id: str
    rerun_of: int | None
    failure_reason: str
    job_id: str
    include_selector: str
    exclude_selector: str
    parallelism: int | None


@dataclass(frozen=True)
class RunPage:
    """One page of GET /api/v1/runs: `next` is the cursor for the next page, or None."""

    runs: list[RunSummary]
    next: str | int | None


def run_counter_of(value: Any) -> int | None:
    """The runCounter as an int, accepting a numeric string; None for anything else."""
    if isinstance(value, bool):  # bool is an int subclass, but True is not a run
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        return int(value.strip())
    return None


def checked_run_counter(value: Any) -> int:
    """A run id/counter argument as a non-negative int; ValueError for anything else."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a run id must be a non-negative integer, not {value!r}")
    return value


def cursor_of(value: Any) -> str | int | None:
    """The `next` cursor of a list page: a string or an int, None when absent or empty."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def run_summary_of(item: Any) -> RunSummary | None:
    """A RunSummary from a RunSummary/RunInfo object; None without an integer `id`."""
    if not isinstance(item, dict):
        return None
    run_counter = run_counter_of(item.get("id"))
    if run_counter is None:
        return None
    details = item.get("runDetails")
    details = details if isinstance(details, dict) else {}
    return RunSummary(
        run_counter=run_counter,
        status=as_text(item.get("runStatus")),
        run_type=as_text(item.get("runType")),
        start_time=parse_datetime(item.get("runStartTime")),
        end_time=parse_datetime(item.get("runEndTime")),
        environment_id=as_text(item.get("environmentID")) or as_text(details.get("environmentID")),
        rerun_of=run_counter_of(item.get("reRunID")),
        failure_reason=scrubbed_text(as_text(item.get("runFailureReason"))),
        job_id=as_text(details.get("jobID")),
        include_selector=as_text(details.get("includeNodesSelector")),
        exclude_selector=as_text(details.get("excludeNodesSelector")),
        parallelism=as_count(details.get("parallelism")),
    )


def scrubbed_text(value: Any) -> str:
    """Coalesce's free text (or JSON), scrubbed of secrets and kept short."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value)
    return scrub(text)[:TEXT_LIMIT]


def error_envelope(content: bytes) -> tuple[str, str] | None:
    """(errorString, errorDetail) from {"error": {...}}, scrubbed; None if not that shape."""
    try:
        data = json.loads(content)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and ("errorString" in error or "errorDetail" in error):
        return scrubbed_text(error.get("errorString")), scrubbed_text(error.get("errorDetail"))
    if isinstance(error, str) and error:  # tolerated: {"error": "text"}
        return scrubbed_text(error), ""
    return None


def body_text(content: bytes) -> str:
    # Scrub the whole text before cutting it, so a cut cannot split a secret in two.
    return scrub(content.decode("utf-8", errors="replace"))[:TEXT_LIMIT]


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# --- nodes and jobs (docs/coalesce-api.md §6.2-6.4) ---


def node_record_of(item: Any) -> NodeRecord | None:
    """What the preview needs of one node (summary or full): id, name, locationName,
    nodeType and, from a full node, `metadata.sourceMapping[].dependencies[]` as
    (locationName, nodeName) pairs. None without an id and a name; odd parts are skipped."""
    if not isinstance(item, dict):
        return None
    node_id, name = as_text(item.get("id")), as_text(item.get("name"))
    if not node_id or not name:
        return None
    metadata = item.get("metadata")
    mappings = metadata.get("sourceMapping") if isinstance(metadata, dict) else None
    pairs: dict[tuple[str, str], None] = {}
    for mapping in mappings if isinstance(mappings, list) else ():
        deps = mapping.get("dependencies") if isinstance(mapping, dict) else None
        for dep in deps if isinstance(deps, list) else ():
            if isinstance(dep, dict) and as_text(dep.get("nodeName")):
                pairs[(as_text(dep.get("locationName")), as_text(dep.get("nodeName")))] = None
    return NodeRecord(node_id, name, as_text(item.get("locationName")),
                      as_text(item.get("nodeType")), tuple(pairs))


@dataclass(frozen=True)
class JobInfo:
    """A job as GET /api/v1/environments/{id}/jobs/{jobID} describes it ("" when absent)."""

    id: str
    name: str
    include_selector: str
    exclude_selector: str


def job_of(data: dict[str, Any], job_id: str) -> JobInfo:
    """A JobInfo from the job object (or its `data` wrapper), scrubbed and cut to size."""
    if isinstance(data.get("data"), dict):
        data = data["data"]

    def text(*keys: str) -> str:
        value = next((as_text(data.get(k)) for k in keys if as_text(data.get(k))), "")
        return scrub(value)[:TEXT_LIMIT]

    return JobInfo(text("id") or job_id, text("name"),
                   text("includeSelector", "includeNodesSelector"),
                   text("excludeSelector", "excludeNodesSelector"))
