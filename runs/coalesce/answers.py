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


# The largest runCounter a run row can store (a signed 64-bit column); a bigger one from
# Coalesce is treated as no runCounter at all rather than failing the write.
MAX_RUN_COUNTER = 2**63 - 1


def run_counter_of(value: Any) -> int | None:
    """The runCounter as an int, accepting a numeric string; None for anything else,
    negative numbers and numbers above MAX_RUN_COUNTER included."""
    if isinstance(value, bool):  # bool is an int subclass, but True is not a run
        return None
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        value = int(value.strip()) if len(value.strip()) <= 20 else None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_RUN_COUNTER else None
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
