"""Template filters for times, durations and outcomes, so every page writes them one way
(runs.time_format): {% load runs_format %} then {{ run.created_at|when_html }} or
{% outcome_badge run.outcome run.outcome_reason %}."""

from __future__ import annotations

from html import escape

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from runs import time_format
from runs.models import Outcome

register = template.Library()


@register.filter
def when(value) -> str:
    return time_format.when(value)


@register.filter
def duration(value) -> str:
    return time_format.duration(value)


@register.filter
def ago(value) -> str:
    return time_format.ago(value)


@register.filter
def when_html(value) -> str:
    """<time datetime="…">2026-11-30 14:05 UTC</time> <small>3 min ago</small>"""
    if value is None:
        return ""
    return format_html('<time datetime="{}">{}</time> <small class="ago">{}</small>',
                       value.isoformat(), time_format.when(value), time_format.ago(value))


# Each outcome's shape, beside its word and its colour (dashboard.css), so that it never
# rests on colour alone. No longer followed is "‖".
_SHAPES = {Outcome.SUCCEEDED: "✓", Outcome.FAILED: "✕", Outcome.CANCELLED: "⊘",
           Outcome.RUNNING: "▶", Outcome.QUEUED: "…", Outcome.COULD_NOT_START: "!",
           Outcome.UNKNOWN: "?"}


@register.simple_tag
def outcome_badge(outcome, reason="") -> str:
    """A run's one outcome: its word (and the reason it couldn't start), a shape and a
    colour. A tag rather than an included template: the history draws one per row."""
    return mark_safe(_badge(Outcome(outcome), reason))


def _badge(outcome: Outcome, reason: str) -> str:
    text = escape(f"{outcome.label}: {reason}" if reason else outcome.label)
    return (f'<span class="outcome outcome-{outcome.value}"><span class="outcome-shape" '
            f'aria-hidden="true">{_SHAPES.get(outcome, "‖")}</span> {text}</span>')


@register.simple_tag
def outcome_cell(row, oob=False) -> str:
    """The history's outcome cell content, which the status poll also swaps out of band."""
    swap = ' hx-swap-oob="true"' if oob else ""
    return mark_safe(f'<span id="run-status-{int(row.pk)}"{swap}>'
                     f'{_badge(row.outcome, row.outcome_reason)}</span>')


@register.simple_tag
def history_row(row) -> str:
    """One run of the history as a table row (runs.history.HistoryRow), written here in
    Python: a page is 50 rows of eight cells, and drawing them through the template engine
    took more than half of the page's time (bench/history.py). Every value is escaped;
    the data-label attributes name the cells when rows stack on a phone (dashboard.css)."""
    number = escape(row.number)
    link = ""
    if row.run_link:
        link = (f' <a class="external" href="{escape(row.run_link)}" rel="noopener" '
                f'target="_blank" title="Open in Coalesce">↗<span class="visually-hidden">'
                f'Open run {number} in Coalesce (new tab)</span></a>')
    token = (f" <small>via API token {escape(row.via_token_name)}</small>"
             if row.via_token_name else "")
    target_title = f' title="{escape(row.target_title)}"' if row.target_title else ""
    forced = ' <span class="tag">forced</span>' if row.force else ""
    error_title = f' title="{escape(row.error_full)}"' if row.error_full else ""
    return mark_safe(
        f'<tr>\n  <th scope="row" class="run-number"><a href="{escape(row.url)}">{number}'
        f'<span class="visually-hidden">, open the run</span></a>{link}</th>\n'
        f'  <td data-label="Outcome">{outcome_cell(row)}</td>\n'
        f'  <td data-label="Requested"><time datetime="{row.created_iso}">'
        f'{escape(row.created_display)}</time> <small class="ago">{escape(row.created_ago)}'
        f'</small></td>\n'
        f'  <td data-label="Started by">{escape(row.created_by or "")}{token}</td>\n'
        f'  <td data-label="Environment">{escape(row.environment or "")}</td>\n'
        f'  <td data-label="Job / selectors"{target_title}>{escape(row.target)}{forced}</td>\n'
        f'  <td data-label="Duration">{escape(row.duration_display)}</td>\n'
        f'  <td data-label="Why it failed" class="why"{error_title}>'
        f'{escape(row.error_summary)}</td>\n</tr>')
