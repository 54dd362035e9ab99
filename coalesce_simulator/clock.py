"""Time as the simulator keeps it: integer milliseconds since the epoch, and ISO 8601 text."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def wall_ms() -> int:
    """The wall clock, in ms since the epoch."""
    return int(time.time() * 1000)


def utc_iso(moment: datetime) -> str:
    """ISO 8601 with milliseconds and a Z, as Coalesce writes its timestamps."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def ms_iso(ms: int) -> str:
    return utc_iso(ms_datetime(ms))


def iso_micros(text: str) -> int:
    """Microseconds since the epoch from ISO 8601 ("Z", an offset, or none for UTC)."""
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)  # ValueError when it is no time
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)
