"""Runs per day, environment and chart part, kept current by the database itself.

The history's charts read these counts instead of the runs: a month of a busy site is a
few thousand rows here against tens of thousands of runs. Triggers on runs_run move a run
between counts in the same transaction as any write that changes its outcome,
environment or time, whichever code path writes it (save, bulk_update, update, delete),
so the counts cannot drift from the runs.

A count's `day` is a day of the site's time zone (TIME_ZONE), as days since 1970-01-01,
so a month of charts adds up a few thousand rows. The zone is written into the triggers:
`rebuild` makes them again, and counts every run afresh, when TIME_ZONE changes (migrate
does it: `follow_site_zone`, connected in runs.apps), and until then the charts count the
runs themselves. On SQLite a
zone other than UTC is converted by a function Django registers on its connections, so
runs_run can only be written through Django there (not from the sqlite3 shell).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connections, transaction

# The chart part of a run (runs.charts.bucket), in SQL. `{r}` is OLD or NEW. It must agree
# with runs.models.outcome_of: tests/test_history_charts.py checks it for every state.
BUCKET_SQL = """CASE
    WHEN {r}.status IN ('rejected', 'rate_limited', 'unreachable', 'not_sent')
        THEN 'could_not_start'
    WHEN {r}.status = 'started' AND {r}.coalesce_status = 'completed' THEN 'succeeded'
    WHEN {r}.status = 'started' AND {r}.coalesce_status = 'failed' THEN 'failed'
    WHEN {r}.status = 'started' AND {r}.coalesce_status = 'canceled' THEN 'cancelled'
    WHEN {r}.stopped_following_at IS NOT NULL OR {r}.status = 'unknown' THEN 'other'
    ELSE 'going' END"""


def _day(vendor: str, zone: str, r: str) -> str:
    """The local day of a run's created_at, as days since 1970-01-01."""
    if vendor == "postgresql":
        return f"(({r}.created_at AT TIME ZONE '{zone}')::date - DATE '1970-01-01')"
    if zone == "UTC":
        return f"(CAST(strftime('%s', {r}.created_at) AS INTEGER) / 86400)"
    return (f"CAST(julianday(django_datetime_cast_date({r}.created_at, '{zone}', 'UTC'))"
            f" - 2440587.5 AS INTEGER)")


# Seconds a succeeded run took (NULL unless both times are known), summed for the average.
_SECONDS = {
    "postgresql": "extract(epoch from ({r}.coalesce_ended_at - {r}.coalesce_started_at))",
    # julianday() is a double of days: rounded to the millisecond, its error is gone.
    "sqlite": "round((julianday({r}.coalesce_ended_at) - julianday({r}.coalesce_started_at))"
              " * 86400, 3)",
}
_COLUMNS = ("status", "coalesce_status", "stopped_following_at", "profile_id", "created_at",
            "coalesce_started_at", "coalesce_ended_at")


def _parts(vendor: str, zone: str, r: str) -> dict[str, str]:
    bucket = BUCKET_SQL.format(r=r)
    seconds = _SECONDS[vendor].format(r=r)
    timed = f"({bucket}) = 'succeeded' AND {seconds} >= 0"
    return {"profile": f"{r}.profile_id", "day": _day(vendor, zone, r), "bucket": bucket,
            "seconds": f"CASE WHEN {timed} THEN {seconds} ELSE 0 END",
            "timed": f"CASE WHEN {timed} THEN 1 ELSE 0 END"}


def _add(vendor: str, zone: str, r: str) -> str:
    p = _parts(vendor, zone, r)
    return f"""INSERT INTO runs_runcount (profile_id, day, bucket, n, seconds, timed)
    VALUES ({p['profile']}, {p['day']}, {p['bucket']}, 1, {p['seconds']}, {p['timed']})
    ON CONFLICT (profile_id, day, bucket) DO UPDATE SET n = runs_runcount.n + 1,
        seconds = runs_runcount.seconds + excluded.seconds,
        timed = runs_runcount.timed + excluded.timed;"""


def _remove(vendor: str, zone: str, r: str) -> str:
    p = _parts(vendor, zone, r)
    return f"""UPDATE runs_runcount SET n = n - 1, seconds = seconds - {p['seconds']},
        timed = timed - {p['timed']}
    WHERE profile_id = {p['profile']} AND day = {p['day']} AND bucket = {p['bucket']};"""


def create_sql(vendor: str, zone: str) -> list[str]:
    """The triggers for days of `zone`, and the counts of the runs that already exist."""
    zone = _checked(zone)
    p = _parts(vendor, zone, "runs_run")
    fill = f"""INSERT INTO runs_runcount (profile_id, day, bucket, n, seconds, timed)
        SELECT {p['profile']}, {p['day']}, {p['bucket']}, count(*), sum({p['seconds']}),
               sum({p['timed']})
        FROM runs_run GROUP BY 1, 2, 3;"""
    columns = ", ".join(_COLUMNS)
    if vendor == "postgresql":
        return [f"""CREATE FUNCTION runs_run_count() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN {_remove(vendor, zone, 'OLD')} END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN {_add(vendor, zone, 'NEW')} END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;""",
                f"""CREATE TRIGGER runs_run_count AFTER INSERT OR DELETE OR UPDATE OF {columns}
    ON runs_run FOR EACH ROW EXECUTE FUNCTION runs_run_count();""", fill]
    return [
        f"CREATE TRIGGER runs_run_count_insert AFTER INSERT ON runs_run BEGIN "
        f"{_add(vendor, zone, 'NEW')} END;",
        f"CREATE TRIGGER runs_run_count_update AFTER UPDATE OF {columns} ON runs_run BEGIN "
        f"{_remove(vendor, zone, 'OLD')} {_add(vendor, zone, 'NEW')} END;",
        f"CREATE TRIGGER runs_run_count_delete AFTER DELETE ON runs_run BEGIN "
        f"{_remove(vendor, zone, 'OLD')} END;",
        fill,
    ]


def drop_sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return ["DROP TRIGGER IF EXISTS runs_run_count ON runs_run;",
                "DROP FUNCTION IF EXISTS runs_run_count();"]
    return [f"DROP TRIGGER IF EXISTS runs_run_count_{event};"
            for event in ("insert", "update", "delete")]


def _checked(zone: str) -> str:
    """A zone name fit to be written into SQL: a real zone, in IANA's spelling."""
    if not re.fullmatch(r"[A-Za-z0-9_+\-/]+", zone):
        raise ValueError(f"Not a time zone name: {zone!r}")
    ZoneInfo(zone)  # raises for a zone that does not exist
    return zone


def rebuild(connection, zone: str) -> None:
    """Count every run again, by days of `zone`, and keep the counts so from now on.
    Plain SQL, so that migrations can call it whatever the models look like later."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for statement in drop_sql(connection.vendor):
            cursor.execute(statement)
        cursor.execute("DELETE FROM runs_runcount")
        for statement in create_sql(connection.vendor, zone):
            cursor.execute(statement)
        cursor.execute("DELETE FROM runs_runcountzone")
        cursor.execute("INSERT INTO runs_runcountzone (id, zone) VALUES (1, %s)", [zone])
    _kept.discard(connection.alias)


_kept: set[str] = set()  # the database aliases seen counting by TIME_ZONE's days


def kept_for_site_zone(alias: str = "default") -> bool:
    """Whether the counts are by days of TIME_ZONE (asked once per process: only
    `rebuild` changes the answer, and it only ever makes it true for this TIME_ZONE)."""
    from runs.models import RunCountZone

    if alias not in _kept and RunCountZone.objects.using(alias).filter(
            pk=1, zone=settings.TIME_ZONE).exists():
        _kept.add(alias)
    return alias in _kept


def follow_site_zone(using: str = "default", **kwargs) -> None:
    """After migrate (and a test database's flush): count by TIME_ZONE's days if the
    counts are kept by another zone's, or by none."""
    connection = connections[using]
    if "runs_runcountzone" not in connection.introspection.table_names():
        return  # migrated back to before the counts existed
    if not kept_for_site_zone(using):
        rebuild(connection, settings.TIME_ZONE)
