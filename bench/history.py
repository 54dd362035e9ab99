"""Benchmark of the run history at scale: a script, not a test.

    python bench/history.py [--rows 1000000] [--repeat 30] [--explain] [--only WORDS]

Creates the schema (migrate), seeds --rows runs over two years across 20 environments and
200 users with bulk inserts (executemany on SQLite, COPY on PostgreSQL), then measures on
that same data, with Django's test Client, the server time (median and 95th percentile of
--repeat requests) of: the first history page, a filtered page (environment + outcome), a
page 10,000 runs deep (through its cursor), the run page and the admin change list for
Run, as a superuser; for information also an analyst's first page, the htmx rows
fragment, searches and the charts fragment; and the CSV export of every run (rows/s and
peak memory). It prints a table against the targets:

    history pages (searches included) <= 25 ms median and <= 40 ms p95, >= 5x faster than
    the admin change list; charts <= 50 ms;
    export > 50,000 rows/s with peak memory < 150 MB.

Database: DATABASE_URL if set (PostgreSQL: use a database of its own; its name must contain
"bench", because the runs table is emptied first), else a SQLite file in a temporary
directory (--sqlite-path to keep it, --reuse to measure it again without seeding).
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_ENVIRONMENTS = 20
N_USERS = 200
N_GROUPS = 10  # each group may run 2 environments and has 20 users
SPAN = timedelta(days=730)
SEED_CHUNK = 20_000
TARGET_PAGE_MS = 25.0
TARGET_PAGE_P95_MS = 40.0
TARGET_CHARTS_MS = 50.0
NODES = ["FCT_ORDERS", "FCT_REVENUE", "DIM_CUSTOMER", "STG_ORDERS", "STG_PAYMENTS"]
TARGET_ADMIN_RATIO = 5.0
TARGET_EXPORT_ROWS_S = 50_000
TARGET_EXPORT_MB = 150.0


def configure(sqlite_path: str | None) -> str:
    """Test-like settings from the environment (defaults for the bench only); the DB label."""
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")
    key = base64.b64encode(b"bench-only-key-32-bytes-long!!!!").decode()
    os.environ.setdefault("CREDENTIALS_ENCRYPTION_KEYS", f"bench1:{key}")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    if not os.environ.get("DATABASE_URL"):
        path = sqlite_path or str(Path(tempfile.mkdtemp(prefix="history-bench-")) / "bench.db")
        os.environ["SQLITE_PATH"] = path
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    warnings.filterwarnings("ignore", message="No directory at")
    import django

    django.setup()
    from django.db import connection

    return f"{connection.vendor} ({connection.settings_dict['NAME']})"


# --- seeding ---


def seed(rows: int) -> None:
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction

    from runs.models import EnvironmentProfile, Run

    rng = random.Random(20240510)
    groups = [Group.objects.get_or_create(name=f"bench-analysts-{g}")[0] for g in range(N_GROUPS)]
    profiles = []
    for e in range(N_ENVIRONMENTS):
        profile, _ = EnvironmentProfile.objects.get_or_create(
            name=f"Environment {e:02d}",
            defaults={"base_url": "https://app.coalescesoftware.io", "environment_id": str(100 + e),
                      "snowflake_auth_type": EnvironmentProfile.AuthType.OAUTH})
        profile.allowed_groups.add(groups[e // 2])
        profiles.append(profile)
    users = []
    for u in range(N_USERS):
        user, created = User.objects.get_or_create(username=f"analyst{u:03d}")
        if created:
            user.set_unusable_password()
            user.save()
            user.groups.add(groups[u // (N_USERS // N_GROUPS)])
        users.append(user)
    if not User.objects.filter(username="bench-admin").exists():
        User.objects.create_superuser("bench-admin", "bench@example.com", None)

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {Run._meta.db_table} RESTART IDENTITY CASCADE")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            cursor.execute(f"DELETE FROM {Run._meta.db_table}")
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.execute("PRAGMA journal_mode = MEMORY")

    columns, make_row = _row_factory(rng, profiles, users, rows)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = f"COPY {Run._meta.db_table} ({', '.join(columns)}) FROM STDIN"
            with cursor.copy(sql) as copy:
                for i in range(rows):
                    copy.write_row(make_row(i))
        else:
            placeholders = ", ".join("?" * len(columns))
            sql = (f"INSERT INTO {Run._meta.db_table} ({', '.join(columns)}) "
                   f"VALUES ({placeholders})")
            for first in range(0, rows, SEED_CHUNK):
                last = min(rows, first + SEED_CHUNK)
                cursor.executemany(sql, [make_row(i) for i in range(first, last)])
    inserted = time.perf_counter() - started
    with connection.cursor() as cursor:
        # Fresh statistics, as autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite) would give.
        postgres = connection.vendor == "postgresql"
        cursor.execute("VACUUM ANALYZE runs_run" if postgres else "ANALYZE")
    analyze = time.perf_counter() - started - inserted
    print(f"seeded {rows:,} runs in {inserted:.1f} s (+ {analyze:.1f} s ANALYZE)")


def _row_factory(rng: random.Random, profiles, users, rows: int):
    """The INSERT's columns and a function building row i (in created_at order)."""
    from django.db import connection

    from runs.models import Run

    sqlite = connection.vendor == "sqlite"
    fields = [f for f in Run._meta.concrete_fields if not f.primary_key]
    columns = [f.column for f in fields]
    # Every column this script does not set gets its model default, prepared once.
    defaults = {f.column: (None if f.null and not f.has_default()
                           else f.get_db_prep_save(f.get_default(), connection)) for f in fields}
    json_columns = {f.column for f in fields if f.get_internal_type() == "JSONField"}
    for column in json_columns:
        defaults[column] = "{}"
    adapt_dt = connection.ops.adapt_datetimefield_value if sqlite else (lambda value: value)
    uid = (lambda: uuid.uuid4().hex) if sqlite else uuid.uuid4
    true, false = (1, 0) if sqlite else (True, False)
    end = datetime.now(UTC) - timedelta(minutes=5)
    start = end - SPAN
    step = SPAN.total_seconds() / rows
    errors = ["Job 12 does not exist", "Snowflake: Incorrect username or password was specified.",
              "Node STG_ORDERS failed:\nSQL compilation error: invalid identifier 'AMOUNT'",
              "Workspace has a failed deployment", "=cmd|' /C calc'!A0", "Timed out, reading"]
    per_group = N_USERS // N_GROUPS
    state = {"counter": 100_000, "tie": None}

    def make_row(i: int) -> tuple:
        # A few runs share one timestamp, as double submissions and batch jobs do.
        if state["tie"] and rng.random() < 0.6:
            created = state["tie"]
        else:
            created = start + timedelta(seconds=i * step + rng.random() * step * 0.9)
            state["tie"] = created if i % 997 == 0 else None
        e = rng.randrange(N_ENVIRONMENTS)
        profile = profiles[e]
        user = users[(e // 2) * per_group + rng.randrange(per_group)]
        roll = rng.random()
        values = dict(defaults)
        status, coalesce_status = "started", ""
        c_start = c_end = None
        error = ""
        if roll < 0.07:
            status, error = "rejected", rng.choice(errors)
        elif roll < 0.09:
            status, error = "unreachable", "Could not connect to Coalesce."
        elif roll < 0.10:
            status, error = "unknown", "Timed out, reading"
        elif roll < 0.105:
            status = "not_sent"
        elif roll < 0.107:
            status = "submitting"
        if status == "started":
            state["counter"] += 1
            values["run_counter"] = state["counter"]
            values["run_link"] = f"https://app.coalescesoftware.io/runs/{state['counter']}"
            recent = end - created < timedelta(hours=2)
            outcome = rng.random()
            c_start = created + timedelta(seconds=rng.randint(2, 60))
            if recent:
                coalesce_status = rng.choice(["waitingToRun", "running", "rendering"])
            elif outcome < 0.88:
                coalesce_status = "completed"
                c_end = c_start + timedelta(seconds=rng.randint(60, 3600))
            elif outcome < 0.97:
                coalesce_status = "failed"
                c_end = c_start + timedelta(seconds=rng.randint(5, 900))
                # As the sweep stores it (runs.summaries): which nodes failed and why.
                node = rng.choice(NODES)
                values["failure_summary"] = (f"1 of 5 nodes failed: {node}. SQL compilation "
                                             "error: invalid identifier 'AMOUNT'")
                values["search_text"] = (f"{node}\nsql compilation error: invalid "
                                         "identifier 'amount'").lower()
            else:
                coalesce_status = "canceled"
                c_end = c_start + timedelta(seconds=rng.randint(5, 300))
        job = rng.random() < 0.6
        values.update({
            "uuid": uid(), "submit_token": uid(), "profile_id": profile.pk,
            "environment_id": profile.environment_id, "created_by_id": user.pk,
            "created_at": adapt_dt(created), "job_id": str(rng.randint(1, 40)) if job else "",
            "include_selector": "" if job else "{ location: STAGE name: ORDERS* }",
            "parallelism": rng.choice((4, 8, 16, 32)),
            "force": true if rng.random() < 0.02 else false,
            "status": status, "error_message": error,
            "answered_at": (None if status == "submitting"
                            else adapt_dt(created + timedelta(seconds=1))),
            "coalesce_status": coalesce_status,
            "coalesce_started_at": adapt_dt(c_start) if c_start else None,
            "coalesce_ended_at": adapt_dt(c_end) if c_end else None,
        })
        return tuple(values[column] for column in columns)

    return columns, make_row


# --- measuring ---


def time_get(client, url: str, repeat: int, *, headers=None, expect: str = "") -> list[float]:
    """Server times in ms of `repeat` GETs of `url`, after 3 checked warm-up requests."""
    for _ in range(3):
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code)
        assert expect in response.content.decode(), (url, expect)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def export(client, url: str, *, trace: bool) -> tuple[int, float, float]:
    """(rows, seconds, peak MB) of one full streamed export."""
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    response = client.get(url)
    rows = 0
    for chunk in response.streaming_content:
        rows += chunk.count(b"\r\n")
    seconds = time.perf_counter() - started
    peak = 0.0
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return rows - 1, seconds, peak  # minus the header


def measure(repeat: int, do_export: bool, only: str = "") -> None:
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from runs.history import Cursor
    from runs.models import EnvironmentProfile, Run

    admin = User.objects.get(username="bench-admin")
    analyst = User.objects.get(username="analyst000")
    client, analyst_client = Client(), Client()
    client.force_login(admin)
    analyst_client.force_login(analyst)
    history = reverse("runs:list")
    profile = EnvironmentProfile.objects.get(name="Environment 07")
    newest = Run.objects.order_by("-created_at", "-pk").values_list("created_at", "pk")
    deep_at, deep_pk = newest[9_999]  # the 10,000th newest run: the deep page starts after it
    deep_first = f'href="/runs/{newest[10_000][1]}/"'
    newest_pk = Run.objects.order_by("-created_at", "-pk").values_list("pk", flat=True)[0]
    counter = Run.objects.filter(run_counter__isnull=False).order_by("-pk").values_list(
        "run_counter", flat=True)[5_000]
    cases = [
        ("history: first page", client, history, "page", None, ""),
        ("history: environment + outcome", client,
         f"{history}?environment={profile.pk}&outcome=could_not_start", "page", None, ""),
        ("history: outcome failed", client, f"{history}?outcome=failed", "page", None, ""),
        ("history: 10,000 runs deep", client,
         f"{history}?cursor={Cursor(deep_at, deep_pk).encode()}", "page", None, deep_first),
        ("history: first page (analyst)", analyst_client, history, "page", None, ""),
        ("history: rows fragment (htmx)", client, history, "page", {"HX-Request": "true"}, ""),
        ("history: runCounter search", client, f"{history}?q={counter}", "page", None, ""),
        ("history: node name search", client, f"{history}?q=fct_revenue", "page", None, ""),
        ("history: error text search", client, f"{history}?q=invalid+identifier", "page", None,
         ""),
        ("history: search, no match", client, f"{history}?q=no+such+words", "page", None,
         "No runs match"),
        ("history: charts, last 30 days", client, reverse("runs:charts"), "charts",
         {"HX-Request": "true"}, "run-chart-svg"),
        ("run page", client, reverse("runs:detail", args=[newest_pk]), "info", None, ""),
        ("admin change list for Run", client, reverse("admin:runs_run_changelist"), "admin",
         None, ""),
    ]
    results = {}
    print(f"\n{'page':36} {'median ms':>10} {'p95 ms':>9}  target")
    for name, who, url, kind, headers, expect in cases:
        if only not in name and not (only and name == "admin change list for Run"):
            continue
        times = time_get(who, url, repeat, headers=headers, expect=expect)
        median, slow = statistics.median(times), p95(times)
        results[name] = median
        target = ""
        if kind == "page":
            met = median <= TARGET_PAGE_MS and slow <= TARGET_PAGE_P95_MS
            target = (f"<= {TARGET_PAGE_MS:.0f} ms, p95 <= {TARGET_PAGE_P95_MS:.0f} ms  "
                      f"{'ok' if met else 'MISSED'}")
        elif kind == "charts":
            met = median <= TARGET_CHARTS_MS
            target = f"<= {TARGET_CHARTS_MS:.0f} ms  {'ok' if met else 'MISSED'}"
        print(f"{name:36} {median:10.1f} {slow:9.1f}  {target}")
    admin_ms = results["admin change list for Run"]
    for name in ("history: first page", "history: environment + outcome",
                 "history: 10,000 runs deep"):
        if name not in results:
            continue
        ratio = admin_ms / results[name]
        verdict = "ok" if ratio >= TARGET_ADMIN_RATIO else "MISSED"
        print(f"admin change list / {name[9:]:28} {ratio:6.1f}x  "
              f"(>= {TARGET_ADMIN_RATIO:.0f}x {verdict})")
    if do_export:
        url = reverse("runs:export")
        max_rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows, seconds, _ = export(client, url, trace=False)
        rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max_rss_before) / 1024
        _, _, peak = export(client, url, trace=True)
        rate = rows / seconds
        print(f"CSV export: {rows:,} rows in {seconds:.1f} s = {rate:,.0f} rows/s "
              f"(> {TARGET_EXPORT_ROWS_S:,} {'ok' if rate > TARGET_EXPORT_ROWS_S else 'MISSED'}); "
              f"peak traced memory {peak:.1f} MB, max RSS growth {rss_growth:.1f} MB "
              f"(< {TARGET_EXPORT_MB:.0f} MB "
              f"{'ok' if max(peak, rss_growth) < TARGET_EXPORT_MB else 'MISSED'})")
        assert rows == Run.objects.count(), "the export must contain every run"


def explain() -> None:
    """The plans of the history's queries, to check they are index range scans."""
    from django.contrib.auth.models import User

    from runs.forms import RunFilterForm
    from runs.history import Cursor, RunHistory
    from runs.models import EnvironmentProfile, Run

    admin = User.objects.get(username="bench-admin")
    analyst = User.objects.get(username="analyst000")
    profile = EnvironmentProfile.objects.get(name="Environment 07")
    deep_at, deep_pk = Run.objects.order_by("-created_at", "-pk").values_list(
        "created_at", "pk")[9_999]
    cases = {
        "first page": (admin, {}),
        "environment + outcome": (admin, {"environment": profile.pk,
                                          "outcome": "could_not_start"}),
        "search, no match": (admin, {"q": "no such words"}),
        "10,000 deep": (admin, {"cursor": Cursor(deep_at, deep_pk).encode()}),
        "analyst first page": (analyst, {}),
    }
    for name, (user, params) in cases.items():
        runs = Run.objects.visible_to(user)
        profiles = EnvironmentProfile.objects.visible_to(user)
        form = RunFilterForm(params, runs=runs, profiles=profiles)
        history = RunHistory(runs, form)
        assert history.is_valid(), history.form.errors
        query = history._rows.order_by("-created_at", "-pk")
        if params.get("cursor"):
            query = query.filter(history.form.cleaned_data["cursor"].condition())
        print(f"\n== {name}\n{query[:51].explain()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--sqlite-path", help="keep the SQLite database in this file")
    parser.add_argument("--reuse", action="store_true", help="measure the runs already seeded")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--no-export", action="store_true", help="skip the CSV export")
    parser.add_argument("--only", default="",
                        help="measure only the pages whose name contains this (no export)")
    args = parser.parse_args()
    label = configure(args.sqlite_path)

    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql" and "bench" not in connection.settings_dict["NAME"]:
        sys.exit("Refusing: this empties the runs table; use a database whose name contains "
                 "'bench' (createdb -h 127.0.0.1 -U postgres bench).")
    print(f"database: {label}")
    call_command("migrate", verbosity=0)
    if not args.reuse:
        seed(args.rows)
    else:
        # A migration may have added an index since the seeding: plan with fresh stats.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE runs_run" if connection.vendor == "postgresql" else "ANALYZE")
    if args.explain:
        explain()
    measure(args.repeat, do_export=not args.no_export and not args.only, only=args.only)


if __name__ == "__main__":
    main()
