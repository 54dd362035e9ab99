"""The history's charts: runs per day by outcome for each environment, drawn as SVG.

The numbers come from the same filtered runs as the history's pages (a RunHistory), over
the chart's own range of days; the geometry is computed here so the template only places
ready-made attribute strings.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property

from django.db.models import (
    BooleanField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.safestring import mark_safe

from runs.counts import kept_for_site_zone
from runs.filter_forms import EARLIEST_DATE, day_range
from runs.history import RunHistory, format_duration
from runs.models import GOING, EnvironmentProfile, Outcome, RunCount, outcome_of

# What the bars stack, bottom first: each finished outcome, then the rest; runs still
# going (queued or running) are their own part, never counted as finished.
OK, FAILED, CANCELLED, NOT_STARTED, OTHER, GOING_KEY = (
    "succeeded", "failed", "cancelled", "could_not_start", "other", "going")
OUTCOME_LABELS = {
    OK: str(Outcome.SUCCEEDED.label), FAILED: str(Outcome.FAILED.label),
    CANCELLED: str(Outcome.CANCELLED.label), NOT_STARTED: str(Outcome.COULD_NOT_START.label),
    OTHER: "Unknown or no longer followed", GOING_KEY: "Still going",
}
# The success rate's denominator: runs that reached a final outcome.
FINISHED = (OK, FAILED, CANCELLED, NOT_STARTED)
_BUCKET = {Outcome.SUCCEEDED: OK, Outcome.FAILED: FAILED, Outcome.CANCELLED: CANCELLED,
           Outcome.COULD_NOT_START: NOT_STARTED, **dict.fromkeys(GOING, GOING_KEY)}


def bucket(status: str, coalesce_status: str, unfollowed: bool) -> str:
    """The chart part a run counts in (OUTCOME_LABELS), from its outcome."""
    return _BUCKET.get(outcome_of(status, coalesce_status, True if unfollowed else None), OTHER)


CHART_DEFAULT_DAYS = 30
CHART_MAX_DAYS = 92

# The plot's geometry in SVG user units (the SVG scales to its container).
CHART_WIDTH, CHART_HEIGHT = 640, 170
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 44, 8, 10, 26


def charts_for(history: RunHistory, profiles: QuerySet[EnvironmentProfile] | None = None
               ) -> Charts:
    """Runs per day and outcome for each environment over the chart's date range.

    `history` must be valid. With `profiles` (the environments the viewer may see) and no
    filter but environment, dates and a finished outcome, the numbers come from the
    counts the database keeps by day (runs.counts): one small query, whatever the number
    of runs. Otherwise (or while the counts are by another time zone's days, until the
    next migrate) two grouped queries over the matching runs.
    """
    start, end, capped = _chart_range(history.form.cleaned_data)
    data = history.form.cleaned_data
    if profiles is not None and _counts_answer(data) and kept_for_site_zone():
        return _charts_from_counts(start, end, capped, profiles, data)
    runs = history.filtered(dates=False).filter(day_range("created_at", start, end))
    groups = (
        runs.annotate(day=TruncDate("created_at"))
        .annotate(unfollowed=ExpressionWrapper(Q(stopped_following_at__isnull=False),
                                               output_field=BooleanField()))
        .values_list("profile", "profile__name", "day", "status", "coalesce_status",
                     "unfollowed")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = ((pk, name, day, bucket(status, coalesce_status, unfollowed), n)
              for pk, name, day, status, coalesce_status, unfollowed, n in groups)
    took = ExpressionWrapper(F("coalesce_ended_at") - F("coalesce_started_at"),
                             output_field=DurationField())
    durations = (
        runs.filter(status="started", coalesce_status="completed",
                    coalesce_started_at__isnull=False,
                    coalesce_ended_at__gte=F("coalesce_started_at"))
        .values_list("profile").annotate(total=Sum(took), timed=Count("pk")).order_by()
    )
    return build_charts(start, end, capped, counts,
                        ((pk, total.total_seconds(), timed) for pk, total, timed in durations))


def _counts_answer(data: dict) -> bool:
    """Whether the kept counts can answer these filters: they know environments, days
    and chart parts, not people, forced runs, words, or queued from running."""
    return (not data["user"] and not data["force"] and not data["q"]
            and data["outcome"] in ("", *_BUCKET_OF_FILTER))


# Outcome filters that are one chart part each.
_BUCKET_OF_FILTER = {Outcome.SUCCEEDED: OK, Outcome.FAILED: FAILED,
                     Outcome.CANCELLED: CANCELLED, Outcome.COULD_NOT_START: NOT_STARTED}


def _charts_from_counts(start: date, end: date, capped: bool,
                        profiles: QuerySet[EnvironmentProfile], data: dict) -> Charts:
    counts = RunCount.objects.filter(n__gt=0, profile__in=profiles,
                                     day__range=(_day_number(start), _day_number(end)))
    if data["environment"]:
        counts = counts.filter(profile=data["environment"])
    if data["outcome"]:
        counts = counts.filter(bucket=_BUCKET_OF_FILTER[Outcome(data["outcome"])])
    rows, seconds = [], {}
    for pk, name, day_number, part, n, spent, timed in counts.values_list(
            "profile", "profile__name", "day", "bucket", "n", "seconds", "timed"):
        rows.append((pk, name, _EPOCH + timedelta(days=day_number), part, n))
        if part == OK:
            total = seconds.setdefault(pk, [0.0, 0])
            total[0] += spent
            total[1] += timed
    return build_charts(start, end, capped, rows,
                        ((pk, spent, timed) for pk, (spent, timed) in seconds.items()))


_EPOCH = date(1970, 1, 1)


def _day_number(day: date) -> int:
    return (day - _EPOCH).days


def _chart_range(data: dict) -> tuple[date, date, bool]:
    """(first day, last day, capped): the filter's dates, by default the last 30 days,
    and at most CHART_MAX_DAYS (the most recent ones of a longer range)."""
    end = data["date_to"] or max(timezone.localdate(), data["date_from"] or EARLIEST_DATE)
    start = data["date_from"] or end - timedelta(days=CHART_DEFAULT_DAYS - 1)
    if (end - start).days >= CHART_MAX_DAYS:
        return end - timedelta(days=CHART_MAX_DAYS - 1), end, True
    return start, end, False


class OutcomeTotals:
    """The counts by chart part for the templates, read from `totals`."""

    totals: dict[str, int]

    @property
    def ok(self) -> int:
        return self.totals[OK]

    @property
    def going(self) -> int:
        return self.totals[GOING_KEY]

    @property
    def finished(self) -> int:
        totals = self.totals
        return sum(totals[o] for o in FINISHED)

    @property
    def counts_in_order(self) -> list[int]:
        totals = self.totals
        return [totals[o] for o in OUTCOME_LABELS]

    @property
    def cells_html(self) -> str:
        """The counts as table cells, built here: a month of 20 environments is thousands
        of cells, and one template variable each took most of the charts' time."""
        return mark_safe("".join(f"<td>{n}</td>" for n in self.counts_in_order))

    @property
    def success_rate(self) -> str:
        """Succeeded runs as a share of the finished ones (runs still going left out)."""
        return f"{self.ok / self.finished:.0%}" if self.finished else "—"

    @property
    def outcome_summary(self) -> str:
        """For example "3 succeeded, 1 failed, 0 cancelled, …, 2 still going"."""
        totals = self.totals
        return ", ".join(f"{totals[o]} {label}" for o, label in _SUMMARY_LABELS.items())


_SUMMARY_LABELS = {o: label.lower() for o, label in OUTCOME_LABELS.items()}


@dataclass
class DayBar(OutcomeTotals):
    day: date
    counts: dict[str, int]

    @property
    def totals(self) -> dict[str, int]:
        return self.counts

    @cached_property
    def total(self) -> int:  # asked once the counts are complete (build_charts)
        return sum(self.counts.values())

    @property
    def day_iso(self) -> str:
        return self.day.isoformat()

    @property
    def label(self) -> str:
        return f"{self.day:%Y-%m-%d}: {self.total} runs ({self.outcome_summary})"


@dataclass
class EnvironmentChart(OutcomeTotals):
    pk: int
    name: str
    bars: list[DayBar]
    seconds: float = 0  # the total time of the succeeded runs whose times are known
    timed: int = 0
    y_max: int = 0

    @cached_property
    def totals(self) -> dict[str, int]:
        return {o: sum(bar.counts[o] for bar in self.bars) for o in OUTCOME_LABELS}

    # The bars and the per-day table as markup built here, not in the template: a month of
    # 20 environments is 600 bars and 600 table rows, and a template variable for each
    # part of each was most of the charts' time. Every value is a number or escaped.
    bars_svg: str = ""

    @property
    def day_rows_html(self) -> str:
        return mark_safe("\n".join(
            f'<tr><th scope="row">{bar.day_iso}</th>{bar.cells_html}<td>{bar.total}</td></tr>'
            for bar in self.bars))

    @property
    def total(self) -> int:
        return sum(bar.total for bar in self.bars)

    @property
    def average_duration(self) -> str:
        return _average(self.seconds, self.timed)

    @property
    def description(self) -> str:
        first, last = self.bars[0].day, self.bars[-1].day
        busiest = max(self.bars, key=lambda bar: bar.total)
        return (f"{self.total} runs on {self.name} from {first:%Y-%m-%d} to {last:%Y-%m-%d}: "
                f"{self.outcome_summary}. Success rate {self.success_rate} of finished runs; "
                f"average duration of succeeded runs {self.average_duration}. Busiest day "
                f"{busiest.day:%Y-%m-%d} with {busiest.total} runs.")

    @property
    def axis(self) -> dict:
        """Positions of the axis lines and labels, for the template."""
        bottom = CHART_HEIGHT - PLOT_BOTTOM
        return {"left": PLOT_LEFT, "right": CHART_WIDTH - PLOT_RIGHT, "top": PLOT_TOP,
                "bottom": bottom, "label_x": PLOT_LEFT - 6, "date_y": bottom + 16,
                "width": CHART_WIDTH, "height": CHART_HEIGHT,
                "first_day": self.bars[0].day, "last_day": self.bars[-1].day}

    def layout(self) -> None:
        """Draw the stacked bars: one slot per day, outcomes stacked in OUTCOME order."""
        self.y_max = max(1, max(bar.total for bar in self.bars))
        slot = (CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT) / len(self.bars)
        width = round(max(slot * 0.8, 1), 2)
        groups = [self._bar_svg(bar, round(PLOT_LEFT + index * slot + slot * 0.1, 2), width)
                  for index, bar in enumerate(self.bars) if bar.total]
        self.bars_svg = mark_safe("\n".join(groups))

    def _bar_svg(self, bar: DayBar, x: float, width: float) -> str:
        scale = (CHART_HEIGHT - PLOT_TOP - PLOT_BOTTOM) / self.y_max
        base = CHART_HEIGHT - PLOT_BOTTOM
        rects = []
        for name in OUTCOME_LABELS:
            if n := bar.counts[name]:
                height = scale * n
                base -= height
                rects.append(f'<rect class="chart-segment" x="{x}" y="{round(base, 2)}" '
                             f'width="{width}" height="{round(height, 2)}" '
                             f'fill="url(#chart-fill-{name})"/>')
        return f"<g><title>{html.escape(bar.label)}</title>{''.join(rects)}</g>"


@dataclass
class Charts:
    start: date
    end: date
    capped: bool
    environments: list[EnvironmentChart]
    outcomes: dict[str, str] = field(default_factory=lambda: dict(OUTCOME_LABELS))

    @cached_property
    def totals(self) -> dict[str, int]:
        return {o: sum(chart.totals[o] for chart in self.environments) for o in OUTCOME_LABELS}

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def headline(self) -> str:
        """The one-line summary the history shows closed: "120 runs · 92% succeeded of
        110 finished · 3 still going · average duration 4 min 12 s"."""
        totals = self.totals
        finished = sum(totals[o] for o in FINISHED)
        rate = f"{totals[OK] / finished:.0%}" if finished else "—"
        average = _average(sum(chart.seconds for chart in self.environments),
                           sum(chart.timed for chart in self.environments))
        return (f"{self.total} run{'s' if self.total != 1 else ''} · {rate} succeeded of "
                f"{finished} finished · {totals[GOING_KEY]} still going · "
                f"average duration {average}")


def build_charts(start: date, end: date, capped: bool, counts: Iterable[tuple],
                 durations: Iterable[tuple]) -> Charts:
    """Charts from (profile pk, name, local day, chart part, n) counts and (profile pk,
    total seconds, number of runs timed) for the succeeded runs."""
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    charts: dict[int, EnvironmentChart] = {}
    for pk, name, day, part, n in counts:
        if pk not in charts:
            bars = [DayBar(d, dict.fromkeys(OUTCOME_LABELS, 0)) for d in days]
            charts[pk] = EnvironmentChart(pk, name, bars)
        index = (day - start).days
        if 0 <= index < len(days):
            charts[pk].bars[index].counts[part] += n
    for pk, seconds, timed in durations:
        if pk in charts:
            charts[pk].seconds += seconds
            charts[pk].timed += timed
    environments = sorted(charts.values(), key=lambda chart: chart.name.lower())
    for chart in environments:
        chart.layout()
    return Charts(start, end, capped, environments)


def _average(seconds: float, timed: int) -> str:
    return format_duration(timedelta(seconds=seconds / timed)) if timed else "—"
