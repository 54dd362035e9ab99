"""Benchmark of the status sweep (runs.sweep) at scale: a script, not a test.

    python bench/sweep.py [--runs 1000] [--environments 5] [--sweeps 5] [--history 1000000]

Starts --runs active runs across --environments environments in an in-process Coalesce
simulator (its clock frozen and moved forward by hand, start times spread so that some
runs finish between sweeps), creates the matching profiles and Run rows in bulk, then runs
--sweeps sweeps one interval apart. Per sweep it prints the active runs, the runs that
finished, the Coalesce calls made (the simulator's counter), the wall time, and what
polling each run's status (one runStatus call per active run, as the Airflow and Dagster
integrations do) would have cost. It also makes those per-run calls for real once
(GET /scheduler/runStatus for every run, over one requests session) to compare wall
times. Targets:

    calls per sweep <= environments + runs finished in it; sweep over 1,000 runs < 2 s.

With --history N it first writes N finished runs (one INSERT ... SELECT, so a million takes
seconds), then prints the database's plan (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on
SQLite) for each query the sweep makes, which must read the small `run_active` partial
index rather than the runs table.

Database: DATABASE_URL if set (PostgreSQL: use a database of its own whose name contains
"bench", because runs, profiles and follow states are deleted first), else a SQLite file
in a temporary directory.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INTERVAL = 10.0  # seconds between sweeps, SWEEP_INTERVAL_SECONDS' default
# Start times are spread over SPREAD_INTERVALS intervals and every run lasts a little
# longer than that spread: none has finished at the first sweep, then about 1 in 6.5 of
# them finishes in each interval after it.
SPREAD_INTERVALS = 6.5
TARGET_SWEEP_S = 2.0
TOKEN = "sim-token"


def configure() -> str:
    """Test-like settings from the environment (defaults for the bench only); the DB label."""
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")
    key = base64.b64encode(b"bench-only-key-32-bytes-long!!!!").decode()
    os.environ.setdefault("CREDENTIALS_ENCRYPTION_KEYS", f"bench1:{key}")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.setdefault("SWEEP_INTERVAL_SECONDS", str(int(INTERVAL)))
    if not os.environ.get("DATABASE_URL"):
        path = str(Path(tempfile.mkdtemp(prefix="sweep-bench-")) / "bench.db")
        os.environ["SQLITE_PATH"] = path
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    warnings.filterwarnings("ignore", message="No directory at")
    import django

    django.setup()
    from django.db import connection

    return f"{connection.vendor} ({connection.settings_dict['NAME']})"


class FrozenClock:
    """The simulator's clock: still until the bench moves it (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


def seed(server, clock: FrozenClock, runs: int, environments: int) -> list:
    """Profiles, then `runs` runs started in the simulator over the spread, and their rows."""
    from django.contrib.auth.models import User

    from runs.models import EnvironmentProfile, Run, RunEvent, SweepState

    RunEvent.objects.all().delete()
    Run.objects.all().delete()
    SweepState.objects.all().delete()
    EnvironmentProfile.objects.filter(name__startswith="Bench env").delete()
    user, _ = User.objects.get_or_create(username="bench-sweep")
    profiles = []
    for e in range(environments):
        profile = EnvironmentProfile(
            name=f"Bench env {e}", base_url=server.state.base_url, environment_id=f"bench-{e}",
            snowflake_auth_type=EnvironmentProfile.AuthType.OAUTH)
        profile.set_secret("api_token", TOKEN, by="bench")
        profile.save()
        profiles.append(profile)
    by_environment = {p.environment_id: p for p in profiles}

    step = SPREAD_INTERVALS * INTERVAL / runs
    rows = []
    for i in range(runs):
        # Environments in turn; every run a little later than the one before.
        [sim_run] = server.state.create_runs(1, [f"bench-{i % environments}"], job_id="7")
        profile = by_environment[sim_run.environment_id]
        rows.append(Run(
            submit_token=uuid.uuid4(), profile=profile, created_by=user,
            environment_id=profile.environment_id, job_id="7", parallelism=8, request_body={},
            status=Run.Status.STARTED, run_counter=sim_run.run_counter,
            run_link=f"{server.state.base_url}/runs/{sim_run.run_counter}",
            created_at=sim_run.started_at, coalesce_status="waitingToRun"))
        clock.now += step
    Run.objects.bulk_create(rows, batch_size=500)
    return profiles


def per_run_polling(profiles) -> tuple[int, float]:
    """(calls, seconds) of asking runStatus once for every active run, for real.

    Plain requests rather than the dashboard's client, which has no per-run status call.
    """
    import requests

    from runs.models import Run

    calls = 0
    started = time.perf_counter()
    for profile in profiles:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {profile.get_secret('api_token')}"
            for counter in Run.objects.active().filter(profile=profile).values_list(
                    "run_counter", flat=True):
                answer = session.get(f"{profile.base_url}/scheduler/runStatus",
                                     params={"runCounter": counter}, timeout=10)
                answer.raise_for_status()
                calls += 1
    return calls, time.perf_counter() - started


def sweeps(server, clock: FrozenClock, count: int, environments: int) -> list[float]:
    from runs import sweep
    from runs.models import Run

    print(f"\n{'sweep':>5} {'active':>7} {'finished':>9} {'updated':>8} {'calls':>6} "
          f"{'target':>7} {'wall ms':>8} {'per-run polling calls':>22}")
    walls = []
    for number in range(1, count + 1):
        active = Run.objects.active().count()
        before = server.state.total_calls()
        started = time.perf_counter()
        report = sweep.sweep(now=clock.datetime(), interval=INTERVAL)
        wall = time.perf_counter() - started
        calls = server.state.total_calls() - before
        target = environments + report.finished
        walls.append(wall)
        if report.errors:
            print("  errors:", "; ".join(report.errors))
        verdict = "ok" if calls <= target and wall < TARGET_SWEEP_S else "MISSED"
        print(f"{number:>5} {active:>7,} {report.finished:>9,} {report.updated:>8,} "
              f"{calls:>6,} {'<= ' + str(target):>7} {wall * 1000:>8.0f} {active:>22,}  {verdict}")
        assert calls == report.calls, (calls, report.calls)
        clock.now += INTERVAL
    return walls


def write_history(rows: int, profile, user) -> float:
    """`rows` finished runs of `profile`, older than every active one, in one statement.

    Built from the model's own fields (each takes its default unless set below), so a new
    column cannot break the bench. Returns the seconds it took."""
    from django.db import connection

    from runs.models import Run

    postgres = connection.vendor == "postgresql"
    uuid_sql = "gen_random_uuid()" if postgres else "lower(hex(randomblob(16)))"
    # Finished runs, one a minute going back from a day before the active ones.
    created_sql = ("now() - interval '1 day' - make_interval(mins => n)" if postgres else
                   "strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 day', '-' || n || ' minutes')")
    fixed = {"uuid": uuid_sql, "submit_token": uuid_sql, "created_at": created_sql,
             "run_counter": "n"}
    values = {"profile": profile.pk, "created_by": user.pk, "environment_id":
              profile.environment_id, "status": "started", "coalesce_status": "completed",
              "parallelism": 8}
    columns, selects, params = [], [], []
    for field in Run._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if field.name in fixed:
            selects.append(fixed[field.name])
            continue
        value = values.get(field.name, field.get_default())
        selects.append("%s")
        params.append(field.get_db_prep_save(value, connection))
    series = ("generate_series(1, %s) AS n" if postgres else
              "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < %s) "
              "SELECT n FROM s)")
    sql = (f"INSERT INTO {Run._meta.db_table} ({', '.join(columns)}) "
           f"SELECT {', '.join(selects)} FROM {series}")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, rows])
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


def explain_sweep_queries() -> None:
    """The plan of every query the sweep makes, as the database will run it."""
    from datetime import timedelta

    from django.utils import timezone

    from runs.models import Run

    profile_ids = Run.objects.active().profile_ids()
    profile_id = min(profile_ids)
    queries = {
        "environments with active runs":
            Run.objects.active().order_by().values_list("profile_id", flat=True).distinct(),
        "one environment's active runs":
            Run.objects.active().filter(profile_id=profile_id).order_by("created_at"),
        "active runs too old to follow": Run.objects.active().filter(
            profile_id__in=profile_ids, created_at__lt=timezone.now() - timedelta(hours=48),
        ).order_by(),
        "any active run (reschedule?)": Run.objects.active().order_by().values("pk")[:1],
    }
    for name, queryset in queries.items():
        plan = _plan(queryset)
        uses_index = "run_active" in plan
        print(f"\n{name}: {'uses run_active' if uses_index else 'DOES NOT USE run_active'}")
        print("  " + plan.replace("\n", "\n  "))


def _plan(queryset) -> str:
    """The database's own plan text (QuerySet.explain() drops SQLite's tree lines)."""
    from django.db import connection

    sql, params = queryset.query.sql_with_params()
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000)
    parser.add_argument("--environments", type=int, default=5)
    parser.add_argument("--sweeps", type=int, default=5)
    parser.add_argument("--history", type=int, default=0,
                        help="finished runs to write first, to show the plans at scale")
    args = parser.parse_args()
    label = configure()

    from django.core.management import call_command
    from django.db import connection

    from coalesce_simulator import running_simulator
    from runs.models import Run

    if connection.vendor == "postgresql" and "bench" not in connection.settings_dict["NAME"]:
        sys.exit("Refusing: this deletes every run; use a database whose name contains "
                 "'bench' (psql -h 127.0.0.1 -U postgres -c 'create database benchsweep').")
    print(f"database: {label}; {args.runs:,} runs across {args.environments} environments, "
          f"{args.sweeps} sweeps {INTERVAL:g} s apart")
    call_command("migrate", verbosity=0)
    clock = FrozenClock()
    run_seconds = (SPREAD_INTERVALS + 0.1) * INTERVAL
    with running_simulator(token=TOKEN, run_seconds=run_seconds, clock=clock) as server:
        started = time.perf_counter()
        profiles = seed(server, clock, args.runs, args.environments)
        print(f"seeded in {time.perf_counter() - started:.1f} s; runs last {run_seconds:g} s")
        if args.history:
            seconds = write_history(args.history, profiles[0], profiles[0].runs.first().created_by)
            print(f"wrote {args.history:,} finished runs in {seconds:.1f} s; "
                  f"{Run.objects.count():,} runs in all, {Run.objects.active().count():,} active")
            explain_sweep_queries()

        calls, seconds = per_run_polling(profiles)
        print(f"per-run polling, measured once: {calls:,} runStatus calls in "
              f"{seconds * 1000:.0f} ms ({seconds / max(calls, 1) * 1000:.2f} ms a call "
              "against the local simulator; a remote API costs far more per call)")
        polled = server.state.calls_snapshot()

        walls = sweeps(server, clock, args.sweeps, args.environments)
        print(f"\nsweep wall time: median {statistics.median(walls) * 1000:.0f} ms, "
              f"max {max(walls) * 1000:.0f} ms (target < {TARGET_SWEEP_S * 1000:.0f} ms "
              f"over {args.runs:,} active runs)")
        swept = {name: count - polled.get(name, 0)
                 for name, count in sorted(server.state.calls_snapshot().items())}
        print("sweeps' calls per endpoint:", {k: v for k, v in swept.items() if v})


if __name__ == "__main__":
    main()
