"""The run history: its filters, keyset pages, CSV export and per-environment charts.

Everything here starts from a queryset of the runs the viewer may see (the views pass
`_visible_runs(user)`), so nothing in this module decides permissions: the filter choices,
the pages, the export and the charts are all narrowings of that one queryset.

Pages are keyset ("cursor") pages on (created_at, id), newest first. Each filter has an
index that ends with that key (see Run.Meta.indexes), so the first page and a page a
million rows deep cost the same: an index range scan of PAGE_SIZE + 1 rows, and never a
COUNT(*).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, cached_property, lru_cache
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import NotSupportedError
from django.db.models import CharField, Count, Exists, Func, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDate
from django.forms.utils import flatatt
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from runs.models import EnvironmentProfile, Run

STATUS_LABELS = dict(Run.Status.choices)
TERMINAL_STATUSES = frozenset({"completed", "failed", "canceled"})

PAGE_SIZE = 50
EXPORT_BATCH_SIZE = 2_000
CHART_DEFAULT_DAYS = 30
CHART_MAX_DAYS = 92
# The median duration is computed in Python over at most this many completed runs (the
# newest ones of the range), which bounds the memory and time of a chart request.
MAX_DURATIONS = 20_000
# Dates outside this span are typos, and the far ends would overflow once converted to UTC.
EARLIEST_DATE, LATEST_DATE = date(1970, 1, 1), date(2999, 12, 31)

# The run's status in Coalesce, as the status sweep stores it (Run.coalesce_status).
COALESCE_STATUSES = {
    "waitingToRun": "Waiting to run",
    "initializing": "Initializing",
    "rendering": "Rendering",
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "canceled": "Canceled",
}
STATUS_CHOICES = [
    ("", "Any status"),
    ("Start outcome", Run.Status.choices),
    ("Status in Coalesce", list(COALESCE_STATUSES.items())),
]

# The three outcomes the charts stack, in stacking order (bottom first).
OK, FAILED, OTHER = "ok", "failed", "other"
OUTCOME_LABELS = {OK: "Succeeded or started", FAILED: "Failed or rejected",
                  OTHER: "Unknown or other"}
# "rate_limited" is a refusal too (a status the run service may record).
_FAILED_TO_START = {"rejected", "unreachable", "not_sent", "rate_limited"}


def outcome(status: str, coalesce_status: str) -> str:
    """OK, FAILED or OTHER for a run: Coalesce's word once it has one, else the start."""
    if coalesce_status == "failed":
        return FAILED
    if coalesce_status == "canceled":
        return OTHER
    if status == Run.Status.STARTED:
        return OK  # started, and still running or completed
    if status in _FAILED_TO_START:
        return FAILED
    return OTHER  # submitting (no answer recorded) or an unknown outcome


def format_duration(value: timedelta | None) -> str:
    if value is None:
        return ""
    seconds = round(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _start_of(day: date) -> datetime:
    """Midnight at the start of `day` in the site's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


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
    "error_message",
)
NEWEST_FIRST = ("-created_at", "-pk")


@dataclass
class HistoryRow:
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
        return f"{self._created_local:%Y-%m-%d %H:%M}"

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
        if self.job_id or self.targets_everything:
            return ""
        return " minus ".join(s for s in (self.include_selector, self.exclude_selector) if s)

    @property
    def error_summary(self) -> str:
        return _shorten(self.error_first_line, 120)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def coalesce_status_label(self) -> str:
        return COALESCE_STATUSES.get(self.coalesce_status, self.coalesce_status)

    @property
    def is_moving(self) -> bool:
        """Whether the status may still change (the page then polls for it)."""
        if self.status in ("submitting", "unknown"):
            return True
        return self.status == "started" and self.coalesce_status not in TERMINAL_STATUSES

    @property
    def coalesce_css(self) -> str:
        return self.coalesce_status.lower()

    @property
    def outcome(self) -> str:
        return outcome(self.status, self.coalesce_status)

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
        return [row.pk for row in self.rows if row.is_moving]


def rows_for(runs: QuerySet[Run]) -> list[HistoryRow]:
    """History rows for these runs (the live status refresh renders them again)."""
    return [HistoryRow(*values) for values in runs.values_list(*ROW_FIELDS)]


# --- filters ---


class QuickSelect(forms.Select):
    """A <select> whose options are formatted in Python.

    Django renders each option through a template; for the couple of hundred people in
    the "Started by" filter that took longer than the rest of the page together.
    """

    def render(self, name, value, attrs=None, renderer=None):
        selected = set(self.format_value(value))

        def options(choices) -> str:
            html = []
            for key, label in choices:
                key = "" if key is None else str(key)
                mark = " selected" if key in selected else ""
                html.append(f'<option value="{escape(key)}"{mark}>{escape(label)}</option>')
            return "".join(html)

        parts = []
        for key, label in self.choices:
            if isinstance(label, list | tuple):
                parts.append(f'<optgroup label="{escape(key)}">{options(label)}</optgroup>')
            else:
                parts.append(options([(key, label)]))
        attrs = flatatt(self.build_attrs(self.attrs, {"name": name, **(attrs or {})}))
        return mark_safe(f"<select{attrs}>{''.join(parts)}</select>")  # every part is escaped


class RunFilterForm(forms.Form):
    """The history's query string. The environments offered are `profiles`, the people
    those who started one of `runs`: the viewer never sees a choice they may not use."""

    # Choices are set per viewer in __init__; values are ids.
    environment = forms.TypedChoiceField(coerce=int, empty_value=None, required=False,
                                         widget=QuickSelect)
    user = forms.TypedChoiceField(coerce=int, empty_value=None, required=False,
                                  label="Started by", widget=QuickSelect)
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False, widget=QuickSelect)
    date_from = forms.DateField(required=False, label="From",
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To",
                              widget=forms.DateInput(attrs={"type": "date"}))
    force = forms.BooleanField(required=False, label="Forced runs only")
    q = forms.CharField(required=False, max_length=200, label="Search",
                        widget=forms.TextInput(attrs={"type": "search"}),
                        help_text="A runCounter, or words from the error.")
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, runs: QuerySet[Run], profiles: QuerySet[EnvironmentProfile],
                 **kwargs):
        super().__init__(*args, **kwargs)
        # Each list is read once, and only if the form is rendered or that filter is set
        # (an htmx page of rows needs neither). Plain queries: a ModelChoiceField would
        # build model instances and, on PostgreSQL, open a server-side cursor for each.
        environments = profiles.order_by("name").values_list("pk", "name")
        self.fields["environment"].choices = cache(
            lambda: [("", "All environments"), *environments])
        # An EXISTS probe per person on an index that starts with created_by, where a
        # DISTINCT would read every run. (For analysts the probe also narrows by profile:
        # the index run_user_profile_newest serves that.)
        name = User.USERNAME_FIELD
        people = User.objects.filter(Exists(runs.filter(created_by=OuterRef("pk"))))
        self.fields["user"].choices = cache(
            lambda: [("", "Anyone"), *people.order_by(name).values_list("pk", name)])

    def clean_cursor(self) -> Cursor | None:
        token = self.cleaned_data["cursor"]
        if not token:
            return None
        try:
            return Cursor.decode(token)
        except ValueError:
            raise ValidationError("This page link is damaged. Start again from the newest "
                                  "runs.", code="bad_cursor") from None

    def _clean_date(self, name: str) -> date | None:
        value = self.cleaned_data[name]
        if value and not EARLIEST_DATE <= value <= LATEST_DATE:
            raise ValidationError(f"Enter a date between {EARLIEST_DATE.year} and "
                                  f"{LATEST_DATE.year}.", code="out_of_range")
        return value

    def clean_date_from(self) -> date | None:
        return self._clean_date("date_from")

    def clean_date_to(self) -> date | None:
        return self._clean_date("date_to")

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data


class RunHistory:
    """The history for one request: the visible runs narrowed by validated filters.

    `runs` are the runs the viewer may see, `profiles` the environments whose runs those
    are (the environment filter's choices).

    Call is_valid() first; page(), querystring(), export_batches() and charts() need it.
    """

    page_size = PAGE_SIZE

    def __init__(self, runs: QuerySet[Run], params, *,
                 profiles: QuerySet[EnvironmentProfile]):
        self.form = RunFilterForm(params, runs=runs, profiles=profiles)
        self._runs = runs

    def is_valid(self) -> bool:
        return self.form.is_valid()

    @property
    def _data(self) -> dict:
        return self.form.cleaned_data

    def _filtered(self, *, dates: bool = True) -> QuerySet[Run]:
        data, runs = self._data, self._runs
        if data["environment"]:
            runs = runs.filter(profile=data["environment"])
        if data["user"]:
            runs = runs.filter(created_by=data["user"])
        if data["status"] in Run.Status.values:
            runs = runs.filter(status=data["status"])
        elif data["status"]:
            runs = runs.filter(coalesce_status=data["status"])
        if data["force"]:
            runs = runs.filter(force=True)
        if data["q"]:
            runs = runs.filter(_search(data["q"]))
        if dates and data["date_from"]:
            runs = runs.filter(created_at__gte=_start_of(data["date_from"]))
        if dates and data["date_to"]:
            runs = runs.filter(created_at__lt=_start_of(data["date_to"] + timedelta(days=1)))
        return runs

    @cached_property
    def _rows(self) -> QuerySet:
        return self._filtered().values_list(*ROW_FIELDS)

    def querystring(self, **overrides) -> str:
        """The filters as a normalised query string, plus `overrides` (e.g. cursor=…)."""
        data = self._data
        params = {
            "environment": data["environment"] or "",
            "user": data["user"] or "",
            "status": data["status"],
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

    def export_batches(self) -> Iterator[list[tuple]]:
        """Every filtered run as EXPORT_FIELDS values (see csv_record), newest first, in
        keyset batches of EXPORT_BATCH_SIZE.

        Each batch is its own short query that starts where the last one ended, so memory
        stays flat and no query or cursor is held open between batches (unlike
        .iterator(), which on SQLite would fetch the whole result at once).
        """
        rows = self._filtered().annotate(
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

    def charts(self) -> Charts:
        """Runs per day and outcome for each environment over the chart's date range."""
        start, end, capped = self._chart_range()
        runs = self._filtered(dates=False).filter(
            created_at__gte=_start_of(start), created_at__lt=_start_of(end + timedelta(days=1)))
        counts = (
            runs.annotate(day=TruncDate("created_at"))
            .values_list("profile", "profile__name", "day", "status", "coalesce_status")
            .annotate(n=Count("pk"))
            .order_by()
        )
        durations = (
            runs.filter(coalesce_status="completed", coalesce_started_at__isnull=False,
                        coalesce_ended_at__isnull=False)
            .order_by(*NEWEST_FIRST)
            .values_list("profile", UtcText("coalesce_started_at"), UtcText("coalesce_ended_at"))
            [:MAX_DURATIONS]
        )
        return build_charts(start, end, capped, counts, durations)

    def _chart_range(self) -> tuple[date, date, bool]:
        """(first day, last day, capped): the filter's dates, by default the last 30 days,
        and at most CHART_MAX_DAYS (the most recent ones of a longer range)."""
        data = self._data
        end = data["date_to"] or max(timezone.localdate(), data["date_from"] or EARLIEST_DATE)
        start = data["date_from"] or end - timedelta(days=CHART_DEFAULT_DAYS - 1)
        if (end - start).days >= CHART_MAX_DAYS:
            return end - timedelta(days=CHART_MAX_DAYS - 1), end, True
        return start, end, False


def _key(row: HistoryRow, *, older: bool = True) -> Cursor:
    return Cursor(row.created_at, row.pk, older=older)


def _search(text: str) -> Q:
    """Digits are a runCounter (exact, indexed); anything else searches the error text."""
    if text.isascii() and text.isdigit():
        return Q(run_counter=int(text))
    return Q(error_message__icontains=text) | Q(error_string__icontains=text)


# --- CSV export ---

CSV_HEADER = [
    "run_id", "started_at", "started_by", "environment", "job_id", "include_selector",
    "exclude_selector", "parallelism", "force", "run_counter", "run_link", "status",
    "coalesce_status", "coalesce_started_at", "coalesce_ended_at", "duration_seconds",
    "error",
]
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
     "coalesce_ended_at": "ended_text"}.get(name, name) for name in ROW_FIELDS)


def _iso(text: str | None) -> str:
    """UtcText's value as ISO 8601 with its offset, exactly as datetime.isoformat()."""
    if text is None:
        return ""
    if text.endswith(".000000"):  # PostgreSQL's to_char always prints microseconds
        text = text[:-7]
    return text + "+00:00"


def csv_safe(value):
    """Text a spreadsheet would run as a formula gets a leading quote (CSV injection)."""
    return "'" + value if isinstance(value, str) and value[:1] in FORMULA_PREFIXES else value


def csv_record(values: tuple) -> list:
    """The CSV cells of one run from its EXPORT_FIELDS values."""
    (pk, created, created_by, environment, job_id, include, exclude, parallelism, force,
     run_counter, run_link, status, coalesce_status, started, ended, error) = values
    duration = ""
    if started is not None and ended is not None:
        seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
        duration = seconds if seconds >= 0 else ""
    return [
        pk, _iso(created), csv_safe(created_by), csv_safe(environment), csv_safe(job_id),
        csv_safe(include), csv_safe(exclude), parallelism, "yes" if force else "no",
        "" if run_counter is None else run_counter, csv_safe(run_link), csv_safe(status),
        csv_safe(coalesce_status), _iso(started), _iso(ended), duration, csv_safe(error),
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


# --- charts ---

# The plot's geometry in SVG user units (the SVG scales to its container).
CHART_WIDTH, CHART_HEIGHT = 640, 170
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 44, 8, 10, 26


@dataclass
class Segment:
    outcome: str
    geometry: str  # the <rect>'s x, y, width and height attributes (numbers only)


@dataclass
class DayBar:
    day: date
    counts: dict[str, int]
    x: float = 0
    width: float = 0
    segments: list[Segment] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def day_iso(self) -> str:
        return self.day.isoformat()

    @property
    def ok(self) -> int:
        return self.counts[OK]

    @property
    def failed(self) -> int:
        return self.counts[FAILED]

    @property
    def other(self) -> int:
        return self.counts[OTHER]

    @property
    def label(self) -> str:
        parts = ", ".join(f"{self.counts[o]} {OUTCOME_LABELS[o].lower()}" for o in OUTCOME_LABELS)
        return f"{self.day:%Y-%m-%d}: {self.total} runs ({parts})"


@dataclass
class EnvironmentChart:
    pk: int
    name: str
    bars: list[DayBar]
    durations: list[float]
    y_max: int = 0

    @property
    def totals(self) -> dict[str, int]:
        return {o: sum(bar.counts[o] for bar in self.bars) for o in OUTCOME_LABELS}

    @property
    def total(self) -> int:
        return sum(bar.total for bar in self.bars)

    @property
    def ok(self) -> int:
        return self.totals[OK]

    @property
    def failed(self) -> int:
        return self.totals[FAILED]

    @property
    def other(self) -> int:
        return self.totals[OTHER]

    @property
    def success_rate(self) -> str:
        """Runs that succeeded or started, as a share of every attempt."""
        return f"{self.ok / self.total:.0%}" if self.total else "—"

    @property
    def median_duration(self) -> str:
        if not self.durations:
            return "—"
        return format_duration(timedelta(seconds=statistics.median(self.durations)))

    @property
    def description(self) -> str:
        totals = self.totals
        parts = ", ".join(f"{totals[o]} {OUTCOME_LABELS[o].lower()}" for o in OUTCOME_LABELS)
        first, last = self.bars[0].day, self.bars[-1].day
        busiest = max(self.bars, key=lambda bar: bar.total)
        return (f"{self.total} runs on {self.name} from {first:%Y-%m-%d} to {last:%Y-%m-%d}: "
                f"{parts}. Success rate {self.success_rate}; median duration of completed "
                f"runs {self.median_duration}. Busiest day {busiest.day:%Y-%m-%d} with "
                f"{busiest.total} runs.")

    @property
    def axis(self) -> dict:
        """Positions of the axis lines and labels, for the template."""
        bottom = CHART_HEIGHT - PLOT_BOTTOM
        return {"left": PLOT_LEFT, "right": CHART_WIDTH - PLOT_RIGHT, "top": PLOT_TOP,
                "bottom": bottom, "label_x": PLOT_LEFT - 6, "date_y": bottom + 16,
                "width": CHART_WIDTH, "height": CHART_HEIGHT,
                "first_day": self.bars[0].day, "last_day": self.bars[-1].day}

    def layout(self) -> None:
        """Place the stacked bars: one slot per day, outcomes stacked in OUTCOME order."""
        self.y_max = max(1, max(bar.total for bar in self.bars))
        plot_width = CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT
        plot_height = CHART_HEIGHT - PLOT_TOP - PLOT_BOTTOM
        slot = plot_width / len(self.bars)
        for index, bar in enumerate(self.bars):
            bar.x = round(PLOT_LEFT + index * slot + slot * 0.1, 2)
            bar.width = round(max(slot * 0.8, 1), 2)
            base = CHART_HEIGHT - PLOT_BOTTOM
            for name in OUTCOME_LABELS:
                if bar.counts[name]:
                    height = plot_height * bar.counts[name] / self.y_max
                    base -= height
                    # One attribute string rather than four template variables: a month
                    # of 20 environments draws over a thousand rectangles.
                    geometry = (f'x="{bar.x}" y="{round(base, 2)}" width="{bar.width}" '
                                f'height="{round(height, 2)}"')
                    bar.segments.append(Segment(name, mark_safe(geometry)))


@dataclass
class Charts:
    start: date
    end: date
    capped: bool
    environments: list[EnvironmentChart]
    outcomes: dict[str, str] = field(default_factory=lambda: dict(OUTCOME_LABELS))


def build_charts(start: date, end: date, capped: bool, counts: Iterable[tuple],
                 durations: Iterable[tuple]) -> Charts:
    """Charts from (profile pk, name, day, status, coalesce_status, n) groups and
    (profile pk, coalesce_started_at, coalesce_ended_at) rows, times as UtcText."""
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    charts: dict[int, EnvironmentChart] = {}
    for pk, name, day, status, coalesce_status, n in counts:
        if pk not in charts:
            bars = [DayBar(d, dict.fromkeys(OUTCOME_LABELS, 0)) for d in days]
            charts[pk] = EnvironmentChart(pk, name, bars, [])
        index = (day - start).days
        if 0 <= index < len(days):
            charts[pk].bars[index].counts[outcome(status, coalesce_status)] += n
    for pk, started, ended in durations:  # as UtcText
        seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
        if pk in charts and seconds >= 0:
            charts[pk].durations.append(seconds)
    environments = sorted(charts.values(), key=lambda chart: chart.name.lower())
    for chart in environments:
        chart.layout()
    return Charts(start, end, capped, environments)
