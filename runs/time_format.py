"""How every page, export and message writes a time or a duration: one format everywhere.

A time reads "2026-11-30 14:05 UTC" (date, minutes and the zone's abbreviation, in the
TIME_ZONE setting), with "3 min ago" beside it on pages; a duration reads "4 min 12 s".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone


def when(value: datetime | None) -> str:
    """"2026-11-30 14:05 UTC" in the configured time zone ("" for None)."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def duration(value: timedelta | float | None) -> str:
    """"45 s", "4 min 12 s", "2 h 05 min" ("" for None or a negative span)."""
    if value is None:
        return ""
    seconds = round(value.total_seconds() if isinstance(value, timedelta) else value)
    if seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def ago(value: datetime | None, *, now: datetime | None = None) -> str:
    """"just now", "3 min ago", "2 h ago", "5 days ago" ("" for None)."""
    if value is None:
        return ""
    seconds = ((now or timezone.now()) - value).total_seconds()
    if seconds < 0:
        return "in the future"
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"
