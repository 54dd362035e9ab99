"""Benchmark of the JSON API beside the pages: a script, not a test.

    python bench/api.py [--rows 1000000] [--repeat 30] [--sqlite-path PATH] [--reuse]

Seeds --rows runs as bench/history.py does (same data, same options), then measures the
server time (median and 95th percentile of --repeat requests, Django's test Client, a real
token) of:
- the list endpoint: the first page, environment + status, and a page 10,000 runs deep
  (through its cursor), beside the history page's first page;
- starting a run: POST /api/v1/runs against POST /runs/new/ (the form), with Coalesce
  answered in-process (`responses`), so the difference is the API's own overhead.

Targets: list pages <= 25 ms median (the history's target); API start overhead <= 10 ms
median over the form's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from history import configure, p95, seed, time_get  # noqa: E402

TARGET_LIST_MS = 25.0
TARGET_START_OVERHEAD_MS = 10.0


def timed_posts(make_request, repeat: int) -> list[float]:
    for _ in range(3):
        make_request()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        make_request()
        times.append((time.perf_counter() - started) * 1000)
    return times


def measure(repeat: int) -> None:
    import responses
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from runs import tokens
    from runs.history import Cursor
    from runs.models import ApiToken, EnvironmentProfile, Run

    settings.API_REQUESTS_PER_MINUTE = 1_000_000
    admin = User.objects.get(username="bench-admin")
    ApiToken.objects.filter(user=admin).delete()
    _, secret = tokens.create_token(admin, name="bench", scopes=["runs:read", "runs:start"],
                                    expires_at=None, ip=None)
    auth = {"Authorization": f"Bearer {secret}"}
    client = Client()
    client.force_login(admin)
    profile = EnvironmentProfile.objects.get(name="Environment 07")
    newest = Run.objects.order_by("-created_at", "-pk").values_list("created_at", "pk")
    deep_at, deep_pk = newest[9_999]
    rows = []

    def row(name, times, target=None):
        median = statistics.median(times)
        verdict = "" if target is None else ("ok" if median <= target else "OVER TARGET")
        rows.append((name, median, p95(times), verdict))

    row("history page: first page (the form's side)",
        time_get(client, reverse("runs:list"), repeat))
    for name, query in [
        ("API list: first page", ""),
        ("API list: environment + status", f"?environment={profile.pk}&status=rejected"),
        ("API list: 10,000 runs deep", f"?cursor={Cursor(deep_at, deep_pk).encode()}"),
    ]:
        row(name, time_get(client, f"/api/v1/runs{query}", repeat, headers=auth),
            TARGET_LIST_MS)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as coalesce:
        coalesce.post(f"{profile.base_url}/scheduler/startRun", json={"runCounter": 9})
        profile.set_secret("api_token", "bench-token", by="bench")
        profile.save()

        def form_start():
            response = client.post(reverse("runs:new"), {
                "environment": profile.pk, "job_id": "3", "parallelism": "4",
                "submit_token": str(uuid.uuid4()), "param_name": "", "param_value": ""})
            assert response.status_code == 302, response.status_code

        def api_start():
            response = client.post("/api/v1/runs", json.dumps(
                {"environment": profile.pk, "job_id": "3", "parallelism": 4}),
                content_type="application/json", headers=auth)
            assert response.status_code == 201, response.content

        form_times = timed_posts(form_start, repeat)
        api_times = timed_posts(api_start, repeat)
    row("start: the run form", form_times)
    row("start: POST /api/v1/runs", api_times)
    overhead = statistics.median(api_times) - statistics.median(form_times)
    print(f"\n{'case':<46} {'median ms':>10} {'p95 ms':>8}  target")
    for name, median, high, verdict in rows:
        print(f"{name:<46} {median:>10.1f} {high:>8.1f}  {verdict}")
    verdict = "ok" if overhead <= TARGET_START_OVERHEAD_MS else "OVER TARGET"
    print(f"{'API start overhead over the form':<46} {overhead:>10.1f} {'':>8}  "
          f"<= {TARGET_START_OVERHEAD_MS:.0f} ms: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--sqlite-path", help="keep the SQLite database in this file")
    parser.add_argument("--reuse", action="store_true", help="measure the runs already seeded")
    args = parser.parse_args()
    label = configure(args.sqlite_path)

    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql" and "bench" not in connection.settings_dict["NAME"]:
        sys.exit("Refusing: this empties the runs table; use a database whose name contains "
                 "'bench'.")
    print(f"database: {label}")
    call_command("migrate", verbosity=0)
    if not args.reuse:
        seed(args.rows)
    measure(args.repeat)


if __name__ == "__main__":
    main()
