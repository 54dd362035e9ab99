"""The CSV exports: the run history's and the audit log's.

Both stream: each reads its rows in keyset batches (short queries that start where the last
one ended), so memory stays flat and no query or cursor is held open between batches at any
size. Both neutralise cells a spreadsheet would run as a formula (csv_safe).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache

from django.db import NotSupportedError
from django.db.models import CharField, Func, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from runs.history import NEWEST_FIRST, ROW_FIELDS, Cursor, RunHistory
from runs.models import COULD_NOT_START_REASONS, AuditEntry, outcome_of

EXPORT_BATCH_SIZE = 2_000
AUDIT_BATCH_SIZE = 2_000


def csv_response(chunks: Iterable[str], filename_prefix: str) -> StreamingHttpResponse:
    """A streamed CSV download named "<filename_prefix>-<today's local date>.csv"."""
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    filename = f"{filename_prefix}-{timezone.localdate():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- the run history ---

# requested_at is when the attempt was made (Run.created_at), not when Coalesce began
# running it (coalesce_started_at).
CSV_HEADER = [
    "dashboard_run", "requested_at", "started_by", "environment", "job_id", "include_selector",
    "exclude_selector", "parallelism", "force", "run_counter", "run_link", "outcome", "status",
    "coalesce_status", "coalesce_started_at", "coalesce_ended_at", "duration_seconds",
    "error", "via_api_token",
]
# `outcome` is the run's one outcome in the pages' words ("Couldn't start: rate limited");
# `status` and `coalesce_status` are the raw start state and Coalesce's runStatus behind it.
# `error` is why it failed: the node summary once results are in, else the start error.
# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV
# injection"), so such cells get a leading single quote and are shown as text.
FORMULA_PREFIXES = frozenset("=+-@\t\r")


class UtcText(Func):
    """A timestamp as ISO 8601 text in UTC without its offset ("2024-05-10T12:00:00.25"),
    formatted by the database.

    An export reads millions of timestamps; turning each into a datetime (Django's psycopg
    loader runs in Python, and its SQLite converter parses text) and back into text was
    most of its time.
    """

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError("UtcText supports PostgreSQL and SQLite only.")

    def as_postgresql(self, compiler, connection, **extra):
        template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores timestamps on SQLite as UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]".
        template = "replace(%(expressions)s, ' ', 'T')"
        return super().as_sql(compiler, connection, template=template, **extra)


EXPORT_FIELDS = tuple(
    {"created_at": "created_text", "coalesce_started_at": "started_text",
     "coalesce_ended_at": "ended_text"}.get(name, name)
    for name in ROW_FIELDS)


def _iso(text: str | None) -> str:
    """UtcText's value as ISO 8601 with its offset, exactly as datetime.isoformat()."""
    if text is None:
        return ""
    if text.endswith(".000000"):  # PostgreSQL's to_char always prints microseconds
        text = text[:-7]
    return text + "+00:00"


# A list separator (";" in many locales, "," or "|" elsewhere) followed by a formula
# character: a spreadsheet that splits the cell there would run the part after it.
_FORMULA_AFTER_SEPARATOR = re.compile(r"([,;|]\s*)([=+\-@\t\r])")


def csv_safe(value):
    """Neutralise text a spreadsheet would run as a formula (CSV injection, following
    OWASP): a leading formula character, and one after a list separator, get a quote."""
    if not isinstance(value, str) or not value:
        return value
    # Most cells hold no separator at all: three substring tests are cheaper than the
    # regular expression, and an export makes about ten calls per run.
    if "," in value or ";" in value or "|" in value:
        value = _FORMULA_AFTER_SEPARATOR.sub(r"\1'\2", value)
    return "'" + value if value[0] in FORMULA_PREFIXES else value


@lru_cache(maxsize=256)
def _outcome_words(status: str, coalesce_status: str, unfollowed: bool) -> str:
    """"Failed", "Couldn't start: rate limited": the pages' words (cached: a million rows
    share a few dozen combinations)."""
    outcome = outcome_of(status, coalesce_status, True if unfollowed else None)
    reason = COULD_NOT_START_REASONS.get(status, "")
    return f"{outcome.label}: {reason}" if reason else str(outcome.label)


def csv_record(values: tuple) -> list:
    """The CSV cells of one run from its EXPORT_FIELDS values."""
    (pk, created, created_by, environment, job_id, include, exclude, parallelism, force,
     run_counter, run_link, status, coalesce_status, started, ended, error, stopped_following,
     failure_summary, via_token_name) = values
    outcome = _outcome_words(status, coalesce_status, stopped_following is not None)
    duration = ""
    if started is not None and ended is not None:
        seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
        duration = seconds if seconds >= 0 else ""
    return [
        pk, _iso(created), csv_safe(created_by), csv_safe(environment), csv_safe(job_id),
        csv_safe(include), csv_safe(exclude), parallelism, "yes" if force else "no",
        "" if run_counter is None else run_counter, csv_safe(run_link),
        outcome, csv_safe(status),
        csv_safe(coalesce_status), _iso(started), _iso(ended), duration,
        csv_safe(failure_summary or error), csv_safe(via_token_name),
    ]


def csv_chunks(batches: Iterable[list[tuple]]) -> Iterator[str]:
    """The CSV text: the header, then one chunk per batch of runs.

    The csv module quotes commas, quotes and newlines; times are ISO 8601 in UTC.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for batch in batches:
        writer.writerows(map(csv_record, batch))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # only the header: nothing matched
        yield buffer.getvalue()



def export_batches(history: RunHistory) -> Iterator[list[tuple]]:
    """Every run of a valid `history` as EXPORT_FIELDS values (see csv_record), newest
    first, in keyset batches of EXPORT_BATCH_SIZE.

    Each batch is its own short query that starts where the last one ended, so memory
    stays flat and no query or cursor is held open between batches (unlike
    .iterator(), which on SQLite would fetch the whole result at once).
    """
    rows = history.filtered().annotate(
        created_text=UtcText("created_at"), started_text=UtcText("coalesce_started_at"),
        ended_text=UtcText("coalesce_ended_at"),
    ).values_list(*EXPORT_FIELDS).order_by(*NEWEST_FIRST)
    position: Cursor | None = None
    while True:
        query = rows.filter(position.condition()) if position else rows
        batch = list(query[:EXPORT_BATCH_SIZE])
        if batch:
            yield batch
        if len(batch) < EXPORT_BATCH_SIZE:
            return
        last = batch[-1]
        position = Cursor(datetime.fromisoformat(last[1]).replace(tzinfo=UTC), last[0])


# --- the audit log ---

AUDIT_CSV_HEADER = ["seq", "at", "actor", "ip", "action", "target", "details", "hash"]


def audit_csv_chunks(entries: QuerySet[AuditEntry],
                     batch_size: int = AUDIT_BATCH_SIZE) -> Iterator[str]:
    """CSV text in chunks, walking the log by seq so memory stays flat at any size."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(AUDIT_CSV_HEADER)
    last_seq = 0
    while True:
        batch = list(entries.filter(seq__gt=last_seq).order_by("seq")[:batch_size])
        for e in batch:
            writer.writerow([csv_safe(v) for v in (
                e.seq, e.at.isoformat(), e.actor, e.ip or "", e.action, e.target,
                json.dumps(e.details, sort_keys=True), e.hash)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(batch) < batch_size:
            return
        last_seq = batch[-1].seq
