"""The run history: its query, keyset cursor, rows and pages.

Everything here starts from a queryset of the runs the viewer may see (the views pass
`Run.objects.visible_to(user)`), so nothing in this module decides permissions: the filter choices,
the pages, the export and the charts are all narrowings of that one queryset. The filters
are runs.filter_forms.RunFilterForm; the CSV export and the charts are built from a RunHistory in
runs.exports and runs.charts. Nothing here renders HTML.

Pages are keyset ("cursor") pages on (created_at, id), newest first. Each filter has an
index that ends with that key (see Run.Meta.indexes), so the first page and a page a
million rows deep cost the same: an index range scan of PAGE_SIZE + 1 rows, and never a
COUNT(*).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.urls import get_script_prefix, reverse
from django.utils import timezone

from runs import time_format
from runs.models import COULD_NOT_START_REASONS, TERMINAL, CoalesceStatus, Outcome, Run, RunState

if TYPE_CHECKING:
    from runs.filter_forms import RunFilterForm


PAGE_SIZE = 50

# Coalesce statuses that mean "not begun yet" (Outcome.QUEUED); any other status that
# is not terminal means running (outcome_of).
_WAITING = ("", CoalesceStatus.WAITING)
_TERMINAL = sorted(s.value for s in TERMINAL)


def outcome_condition(outcome: str) -> Q:
    """The runs whose outcome_of(...) is `outcome`, as a condition the database can index
    (status and coalesce_status lead the history's status indexes)."""
    started = Q(status=Run.Status.STARTED)
    followed = Q(stopped_following_at__isnull=True)
    going = started & ~Q(coalesce_status__in=_TERMINAL)
    conditions = {
        Outcome.SUCCEEDED: started & Q(coalesce_status=CoalesceStatus.COMPLETED),
        Outcome.FAILED: started & Q(coalesce_status=CoalesceStatus.FAILED),
        Outcome.CANCELLED: started & Q(coalesce_status=CoalesceStatus.CANCELED),
        Outcome.COULD_NOT_START: Q(status__in=sorted(COULD_NOT_START_REASONS)),
        Outcome.QUEUED: (Q(status=Run.Status.SUBMITTING) & followed)
        | (started & followed & Q(coalesce_status__in=_WAITING)),
        Outcome.RUNNING: going & followed & ~Q(coalesce_status__in=_WAITING),
        Outcome.UNKNOWN: Q(status=Run.Status.UNKNOWN)
        | Q(status=Run.Status.SUBMITTING, stopped_following_at__isnull=False),
        Outcome.UNFOLLOWED: going & Q(stopped_following_at__isnull=False),
    }
    return conditions[Outcome(outcome)]


def format_duration(value: timedelta | None) -> str:
    return time_format.duration(value)


# --- cursors ---

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,120}")
_MAX_PK = 2**63 - 1


@dataclass(frozen=True)
class Cursor:
    """A position in the history: a row's (created_at, id), and which way to read from it.

    Encoded as unpadded url-safe base64 of "o|<UTC ISO time>|<id>" ("n" for newer). It is
    not signed: a forged cursor can only move within the runs the viewer may see anyway.
    """

    created_at: datetime
    pk: int
    older: bool = True

    def encode(self) -> str:
        when = self.created_at.astimezone(UTC).isoformat()
        raw = f"{'o' if self.older else 'n'}|{when}|{self.pk}"
        return base64.urlsafe_b64encode(raw.encode("ascii")).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor `token` encodes; ValueError for anything encode() could not produce."""
        if not _TOKEN.fullmatch(token):
            raise ValueError("not a cursor")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            direction, when, pk = raw.split("|")
            created_at = datetime.fromisoformat(when).astimezone(UTC)
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as exc:
            raise ValueError("not a cursor") from exc
        if direction not in ("o", "n") or "+" not in when or not pk.isdigit():
            raise ValueError("not a cursor")
        if int(pk) > _MAX_PK:
            raise ValueError("not a cursor")
        return cls(created_at, int(pk), older=direction == "o")

    def condition(self) -> Q:
        """Rows strictly beyond this position, in this cursor's direction.

        The tuple comparison (created_at, id) < (t, pk) written so that every database
        uses the (…, created_at, id) index for it: the first, redundant term bounds the
        index range scan at t, and the OR splits the rows that share t exactly at pk, so
        runs with identical timestamps are neither skipped nor repeated across pages.
        """
        t, pk = self.created_at, self.pk
        if self.older:
            return Q(created_at__lte=t) & (Q(created_at__lt=t) | Q(created_at=t, pk__lt=pk))
        return Q(created_at__gte=t) & (Q(created_at__gt=t) | Q(created_at=t, pk__gt=pk))


# --- rows ---

User = get_user_model()
ROW_FIELDS = (
    "pk", "created_at", f"created_by__{User.USERNAME_FIELD}", "profile__name", "job_id",
    "include_selector", "exclude_selector", "parallelism", "force", "run_counter",
    "run_link", "status", "coalesce_status", "coalesce_started_at", "coalesce_ended_at",
    "error_message", "stopped_following_at", "failure_summary", "via_token_name",
)
NEWEST_FIRST = ("-created_at", "-pk")
# The most a tooltip in the history carries of a run's selectors or error.
TITLE_LIMIT = 300


@dataclass
class HistoryRow(RunState):
    """One run as the history table shows it (built from ROW_FIELDS)."""

    pk: int
    created_at: datetime
    created_by: str
    environment: str
    job_id: str
    include_selector: str
    exclude_selector: str
    parallelism: int
    force: bool
    run_counter: int | None
    run_link: str
    status: str
    coalesce_status: str
    coalesce_started_at: datetime | None
    coalesce_ended_at: datetime | None
    error_message: str
    stopped_following_at: datetime | None
    failure_summary: str
    via_token_name: str  # the API token that started it; "" from a page

    # Display values, computed here rather than with template filters: the table renders
    # 50 rows per page, and each filter call in a row costs more than the page's query.

    @property
    def url(self) -> str:
        return _run_url(self.pk)

    @cached_property
    def _created_local(self) -> datetime:
        return timezone.localtime(self.created_at)

    @property
    def created_iso(self) -> str:
        return self._created_local.isoformat(timespec="seconds")

    @property
    def created_display(self) -> str:
        """"2026-11-30 14:05 UTC", as runs.time_format writes every time."""
        local = self._created_local
        return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"

    @property
    def created_ago(self) -> str:
        return time_format.ago(self.created_at)

    @property
    def target(self) -> str:
        """The job, or a short form of the selectors (the full text is `target_title`)."""
        if self.job_id:
            return f"Job {self.job_id}"
        if self.targets_everything:
            return "Entire environment"
        text = _shorten(self.include_selector or "Everything", 40)
        if self.exclude_selector:
            text += " minus " + _shorten(self.exclude_selector, 30)
        return text

    @property
    def target_title(self) -> str:
        """A longer form of the selectors for the tooltip, still capped: the history never
        embeds whole selectors (a page of 50 rows must stay small); the run page has them."""
        if self.job_id or self.targets_everything:
            return ""
        text = " minus ".join(s for s in (self.include_selector, self.exclude_selector) if s)
        return _shorten(text, TITLE_LIMIT)

    @property
    def error_summary(self) -> str:
        """Why it failed: the node failures once results are in, else the start error."""
        return _shorten(self.failure_summary or self.error_first_line, 160)

    @property
    def error_full(self) -> str:
        """A longer summary, for a title when error_summary is cut ("" if not cut)."""
        text = self.failure_summary or self.error_first_line
        return _shorten(text, TITLE_LIMIT) if len(text) > 160 else ""

    @property
    def is_moving(self) -> bool:
        """Whether the status may still change (the page then polls for it)."""
        return self.is_active


    @property
    def targets_everything(self) -> bool:
        return not (self.job_id or self.include_selector or self.exclude_selector)

    @property
    def duration(self) -> timedelta | None:
        """How long the run took in Coalesce, once it has ended (else None)."""
        start, end = self.coalesce_started_at, self.coalesce_ended_at
        return end - start if start and end and end >= start else None

    @property
    def duration_display(self) -> str:
        return format_duration(self.duration)

    @property
    def error_first_line(self) -> str:
        return self.error_message.strip().partition("\n")[0].strip()


def _shorten(text: str, length: int) -> str:
    """`text` cut to `length` characters, ending with "…" when cut (as truncatechars)."""
    return text if len(text) <= length else text[: length - 1] + "…"


def _run_url(pk: int) -> str:
    """runs:detail for `pk`, without a reverse() per row (about 30 µs each, 50 a page)."""
    head, tail = _run_url_parts(get_script_prefix())
    return f"{head}{pk}{tail}"


@lru_cache(maxsize=8)
def _run_url_parts(script_prefix: str) -> tuple[str, str]:
    marker = "987654321"
    head, _, tail = reverse("runs:detail", args=[int(marker)]).partition(marker)
    return head, tail


@dataclass(frozen=True)
class Page:
    rows: list[HistoryRow]
    older: Cursor | None  # where the next, older page starts; None on the oldest page
    newer: Cursor | None  # None on the newest page
    older_query: str = ""  # the querystrings of the pager links (filters + cursor)
    newer_query: str = ""

    @property
    def moving_ids(self) -> list[int]:
        return moving_ids(self.rows)


def moving_ids(rows: Iterable[HistoryRow]) -> list[int]:
    """The pks of the rows whose status may still change: the ones the page polls for."""
    return [row.pk for row in rows if row.is_moving]


def rows_for(runs: QuerySet[Run]) -> list[HistoryRow]:
    """History rows for these runs (the live status refresh renders them again)."""
    return [HistoryRow(*values) for values in runs.values_list(*ROW_FIELDS)]



class RunHistory:
    """The history for one request: the visible runs narrowed by validated filters.

    `runs` are the runs the viewer may see, and `form` a RunFilterForm built over them
    (its choices come from the same runs and their environments).

    Call is_valid() first; page(), querystring() and filtered() need it.
    """

    page_size = PAGE_SIZE

    def __init__(self, runs: QuerySet[Run], form: RunFilterForm):
        self.form = form
        self._runs = runs

    def is_valid(self) -> bool:
        return self.form.is_valid()

    @property
    def _data(self) -> dict:
        return self.form.cleaned_data

    def filtered(self, *, dates: bool = True) -> QuerySet[Run]:
        """The visible runs narrowed by the filters (without the date range if `dates`
        is false: the charts choose their own days)."""
        data, runs = self._data, self._runs
        if data["environment"]:
            runs = runs.filter(profile=data["environment"])
        if data["user"]:
            runs = runs.filter(created_by=data["user"])
        if data["outcome"]:
            runs = runs.filter(outcome_condition(data["outcome"]))
        if data["force"]:
            runs = runs.filter(force=True)
        if data["q"]:
            runs = runs.filter(_search(data["q"]))
        if dates:
            runs = runs.filter(self.form.date_range("created_at"))
        return runs

    @cached_property
    def _rows(self) -> QuerySet:
        return self.filtered().values_list(*ROW_FIELDS)

    def querystring(self, **overrides) -> str:
        """The filters as a normalised query string, plus `overrides` (e.g. cursor=…)."""
        data = self._data
        params = {
            "environment": data["environment"] or "",
            "user": data["user"] or "",
            "outcome": data["outcome"],
            "date_from": data["date_from"].isoformat() if data["date_from"] else "",
            "date_to": data["date_to"].isoformat() if data["date_to"] else "",
            "force": "1" if data["force"] else "",
            "q": data["q"],
            **overrides,
        }
        return urlencode({k: v for k, v in params.items() if v not in ("", None)})

    def page_querystring(self, page: Page) -> str:
        """The query string that shows `page` again ("" for the newest page, unfiltered)."""
        if page.newer is None:
            return self.querystring()
        return self.querystring(cursor=self.form.data.get("cursor", ""))

    def page(self) -> Page:
        """The page the cursor points at: at most 2 queries, whatever the depth."""
        return self._page_at(self._data["cursor"])

    def _page_at(self, cursor: Cursor | None) -> Page:
        if cursor is not None and not cursor.older:
            return self._newer_page(cursor)
        rows = self._rows.order_by(*NEWEST_FIRST)
        if cursor is not None:
            rows = rows.filter(cursor.condition())
        # One more than a page tells whether an older page exists, without a COUNT.
        fetched = [HistoryRow(*values) for values in rows[: PAGE_SIZE + 1]]
        shown = fetched[:PAGE_SIZE]
        older = _key(shown[-1]) if len(fetched) > PAGE_SIZE else None
        newer = None
        if cursor is not None:  # an older page always has newer rows above it
            newer = _key(shown[0], older=False) if shown else Cursor(
                cursor.created_at, cursor.pk, older=False)
        return self._page(shown, older, newer)

    def _newer_page(self, cursor: Cursor) -> Page:
        rows = self._rows.order_by("created_at", "pk").filter(cursor.condition())
        fetched = [HistoryRow(*values) for values in rows[: PAGE_SIZE + 1]]
        if len(fetched) <= PAGE_SIZE:
            # Back at the top: show the real first page, full and without a cursor.
            return self._page_at(None)
        shown = fetched[:PAGE_SIZE][::-1]
        return self._page(shown, _key(shown[-1]), _key(shown[0], older=False))

    def _page(self, rows, older: Cursor | None, newer: Cursor | None) -> Page:
        return Page(
            rows, older, newer,
            older_query=self.querystring(cursor=older.encode()) if older else "",
            newer_query=self.querystring(cursor=newer.encode()) if newer else "",
        )


def _key(row: HistoryRow, *, older: bool = True) -> Cursor:
    return Cursor(row.created_at, row.pk, older=older)


def _search(text: str) -> Q:
    """What the history's search matches (see RunFilterForm.q's help text).

    A number is a runCounter, or the dashboard's own number of a run Coalesce never
    numbered; "#9" is always the dashboard's. Words are looked for in the node names and
    errors and Coalesce's failure reason (search_text, kept in lower case), the selectors,
    the job and the start error.
    """
    text = text.strip()
    number = text.removeprefix("#")
    if number.isascii() and number.isdigit() and int(number) <= _MAX_PK:
        if text.startswith("#"):
            return Q(pk=int(number))
        return Q(run_counter=int(number)) | Q(pk=int(number), run_counter__isnull=True)
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text.lower()) + "%"
    exact = Q(RawSQL(f"{SEARCH_DOCUMENT} LIKE %s ESCAPE '\\'", (pattern,),
                     output_field=BooleanField()))
    if connection.vendor != "sqlite":
        return exact
    # SQLite: the trigram FTS5 table (migration 0014) finds the candidates from its index,
    # with a phrase query: it reads only the index, where LIKE there would read every
    # candidate's text again (a tenth of the time for a common word; bench/history.py).
    # The exact test on the runs decides. A phrase needs three characters, and a word in
    # many runs is found sooner by reading the newest runs until a page is full than by
    # sorting every candidate.
    if len(text) < 3:
        return exact
    phrase = '"' + text.lower().replace('"', '""') + '"'
    candidates = "SELECT rowid FROM runs_run_search WHERE doc MATCH %s"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({candidates} LIMIT {FTS_MAX_CANDIDATES})",
                       (phrase,))
        if cursor.fetchone()[0] >= FTS_MAX_CANDIDATES:
            return exact
    return Q(pk__in=RawSQL(candidates, (phrase,))) & exact


# Above this many candidates, SQLite's search reads the newest runs instead (bench/history.py).
FTS_MAX_CANDIDATES = 5_000


# What a word search reads, as one lower-case text. On PostgreSQL a trigram GIN index on
# exactly this expression (migration 0009, run_search_trgm) answers LIKE '%words%' without
# reading the table; on SQLite triggers copy it into a trigram FTS5 table, runs_run_search.
# Every column is NOT NULL, so the expression is never NULL and the index can hold it.
SEARCH_DOCUMENT = (
    'lower("runs_run"."search_text" || \' \' || "runs_run"."include_selector" || \' \' || '
    '"runs_run"."exclude_selector" || \' \' || "runs_run"."job_id" || \' \' || '
    '"runs_run"."error_message" || \' \' || "runs_run"."error_string")'
)

