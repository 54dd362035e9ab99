"""Runs per hour, environment and chart part, kept current by the database itself.

The history's charts read these counts instead of the runs: a month of a busy site is a
few thousand rows here against tens of thousands of runs. Triggers on runs_run (created by
migration 0009) move a run between counts in the same transaction as any write that
changes its outcome, environment or time, whichever code path writes it (save,
bulk_update, update, delete), so the counts cannot drift from the runs.

A count's `hour` is hours since 1970-01-01 UTC; the charts add hours up into days of the
site's time zone (a zone with a half-hour offset puts that half hour on one side).
"""

from __future__ import annotations

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
_HOUR = {
    "postgresql": "floor(extract(epoch from {r}.created_at) / 3600)::bigint",
    "sqlite": "CAST(strftime('%s', {r}.created_at) AS INTEGER) / 3600",
}
# Seconds a succeeded run took (NULL unless both times are known), summed for the average.
_SECONDS = {
    "postgresql": "extract(epoch from ({r}.coalesce_ended_at - {r}.coalesce_started_at))",
    # julianday() is a double of days: rounded to the millisecond, its error is gone.
    "sqlite": "round((julianday({r}.coalesce_ended_at) - julianday({r}.coalesce_started_at))"
              " * 86400, 3)",
}
_COLUMNS = ("status", "coalesce_status", "stopped_following_at", "profile_id", "created_at",
            "coalesce_started_at", "coalesce_ended_at")


def _parts(vendor: str, r: str) -> dict[str, str]:
    bucket = BUCKET_SQL.format(r=r)
    seconds = _SECONDS[vendor].format(r=r)
    timed = f"({bucket}) = 'succeeded' AND {seconds} >= 0"
    return {"profile": f"{r}.profile_id", "hour": _HOUR[vendor].format(r=r), "bucket": bucket,
            "seconds": f"CASE WHEN {timed} THEN {seconds} ELSE 0 END",
            "timed": f"CASE WHEN {timed} THEN 1 ELSE 0 END"}


def _add(vendor: str, r: str) -> str:
    p = _parts(vendor, r)
    return f"""INSERT INTO runs_runcount (profile_id, hour, bucket, n, seconds, timed)
    VALUES ({p['profile']}, {p['hour']}, {p['bucket']}, 1, {p['seconds']}, {p['timed']})
    ON CONFLICT (profile_id, hour, bucket) DO UPDATE SET n = runs_runcount.n + 1,
        seconds = runs_runcount.seconds + excluded.seconds,
        timed = runs_runcount.timed + excluded.timed;"""


def _remove(vendor: str, r: str) -> str:
    p = _parts(vendor, r)
    return f"""UPDATE runs_runcount SET n = n - 1, seconds = seconds - {p['seconds']},
        timed = timed - {p['timed']}
    WHERE profile_id = {p['profile']} AND hour = {p['hour']} AND bucket = {p['bucket']};"""


def create_sql(vendor: str) -> list[str]:
    """The triggers, and the counts of the runs that already exist."""
    p = _parts(vendor, "runs_run")
    fill = f"""INSERT INTO runs_runcount (profile_id, hour, bucket, n, seconds, timed)
        SELECT {p['profile']}, {p['hour']}, {p['bucket']}, count(*), sum({p['seconds']}),
               sum({p['timed']})
        FROM runs_run GROUP BY 1, 2, 3;"""
    columns = ", ".join(_COLUMNS)
    if vendor == "postgresql":
        return [f"""CREATE FUNCTION runs_run_count() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN {_remove(vendor, 'OLD')} END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN {_add(vendor, 'NEW')} END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;""",
                f"""CREATE TRIGGER runs_run_count AFTER INSERT OR DELETE OR UPDATE OF {columns}
    ON runs_run FOR EACH ROW EXECUTE FUNCTION runs_run_count();""", fill]
    return [
        f"CREATE TRIGGER runs_run_count_insert AFTER INSERT ON runs_run BEGIN "
        f"{_add(vendor, 'NEW')} END;",
        f"CREATE TRIGGER runs_run_count_update AFTER UPDATE OF {columns} ON runs_run BEGIN "
        f"{_remove(vendor, 'OLD')} {_add(vendor, 'NEW')} END;",
        f"CREATE TRIGGER runs_run_count_delete AFTER DELETE ON runs_run BEGIN "
        f"{_remove(vendor, 'OLD')} END;",
        fill,
    ]


def drop_sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return ["DROP TRIGGER IF EXISTS runs_run_count ON runs_run;",
                "DROP FUNCTION IF EXISTS runs_run_count();"]
    return [f"DROP TRIGGER IF EXISTS runs_run_count_{event};"
            for event in ("insert", "update", "delete")]
