"""Template filters for times and durations, so every page writes them one way
(runs.time_format): {% load runs_format %} then {{ run.created_at|when_html }}."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from runs import time_format

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
