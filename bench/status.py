"""Benchmark of the run page's status fragment under gunicorn: a script, not a test.

    python bench/status.py [--seconds 10] [--connections 16] [--workers 2]

Creates a database with one analyst and one running run (with node results and a
timeline), logs the analyst in, starts `gunicorn dashboard.wsgi` with --workers on a
loopback port, and loads it with wrk (Debian's /usr/bin/wrk) as a browser polling the page
would: with the session cookie and the ETag of its last answer (If-None-Match), which
the view answers with 304 while nothing changed. For comparison it also loads the
fragment without the ETag (a full answer every time) and the site's 404 page. Prints
requests/s next to the floor, then each request's server time in this process (Django's
test client, median of 500; no HTTP server, no load generator), which moves less with
whatever else the machine is running:

    conditional poll of the status fragment >= 1,000 requests/s (2 workers, 2 cores)

Database: DATABASE_URL if set (PostgreSQL: use a database of its own whose name contains
"bench": its runs, profiles and users are deleted first), else a SQLite file in a
temporary directory. wrk and the server share the machine's cores, as they do in the
figures in README.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLOOR = 1000.0
# The server's log goes to a file: a pipe nobody reads fills up and stalls the workers.
LOG = tempfile.TemporaryFile()  # noqa: SIM115 - open for the whole run, closed at exit
WRK = shutil.which("wrk") or "/usr/bin/wrk"


def configure() -> dict[str, str]:
    """Production settings (DEBUG off) for loopback http; returns the server's environment."""
    key = base64.b64encode(b"bench-only-key-32-bytes-long!!!!").decode()
    env = {
        "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789",
        "CREDENTIALS_ENCRYPTION_KEYS": f"bench1:{key}",
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "SECURE_HSTS_PRELOAD": "false",
        "LOG_LEVEL": "ERROR",
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
    }
    if not os.environ.get("DATABASE_URL"):
        env["SQLITE_PATH"] = str(Path(tempfile.mkdtemp(prefix="status-bench-")) / "bench.db")
    elif "bench" not in os.environ["DATABASE_URL"].rsplit("/", 1)[-1]:
        sys.exit("DATABASE_URL must name a database of its own containing 'bench'.")
    os.environ.update(env)
    warnings.filterwarnings("ignore", message="No directory at")
    import django

    django.setup()
    return {**os.environ, **env}


def prepare() -> tuple[str, str]:
    """Migrate, create alice's running run, log her in: (status path, session cookie)."""
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from runs.models import EnvironmentProfile, Run, RunEvent

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)  # the manifest DEBUG-off pages need
    RunEvent.objects.all().delete()
    Run.objects.all().delete()
    EnvironmentProfile.objects.all().delete()
    User.objects.filter(username="alice").delete()
    analysts, _ = Group.objects.get_or_create(name="analysts")
    alice = User.objects.create_user("alice", password="alice-password")
    alice.groups.add(analysts)
    profile = EnvironmentProfile.objects.create(
        name="Bench", base_url="https://app.coalescesoftware.io", environment_id="42")
    profile.allowed_groups.add(analysts)
    now = timezone.now()
    nodes = [{"node_id": f"n{i}", "name": f"NODE_{i}", "status": "completed",
              "stages": [{"name": f"Insert NODE_{i}", "status": "completed", "success": True}],
              "duration_seconds": 3.5} for i in range(20)]
    run = Run.objects.create(
        submit_token=uuid.uuid4(), profile=profile, environment_id="42", created_by=alice,
        parallelism=8, status="started", run_counter=287756343, coalesce_status="running",
        coalesce_started_at=now - timedelta(minutes=3), results=nodes, results_fetched_at=now)
    for message in ("Sending startRun.", "Coalesce accepted the run.", "Coalesce reports running."):
        run.log("bench", message)
    client = Client()
    client.force_login(alice)
    return f"/runs/{run.pk}/status/", client.cookies[settings.SESSION_COOKIE_NAME].value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, workers: int,
                   threads: int) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "dashboard.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads),
         "--log-level", "warning", "--graceful-timeout", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=LOG)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    LOG.seek(0)
    sys.exit("gunicorn did not start: " + LOG.read().decode()[-2000:])


def etag_of(base: str, path: str, cookie: str) -> str:
    request = urllib.request.Request(base + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(request) as answer:
        assert answer.status == 200, answer.status
        return answer.headers["ETag"]


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> tuple[float, str]:
    """Requests/s, and wrk's note on non-2xx/3xx answers (none expected)."""
    command = [WRK, "-t", "1", "-c", str(connections), "-d", f"{seconds}s", url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, (f"{bad.group(1)} answers not 2xx/3xx" if bad else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="gunicorn --threads (1: sync workers, more: gthread)")
    args = parser.parse_args()
    env = configure()
    from django.db import connection

    path, session = prepare()
    cookie = f"sessionid={session}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_gunicorn(env, port, args.workers, args.threads)
    try:
        etag = etag_of(base, path, cookie)
        cases = [
            ("status fragment, conditional (304)", path,
             {"Cookie": cookie, "If-None-Match": etag, "HX-Request": "true"}, FLOOR),
            ("status fragment, full answer (200)", path,
             {"Cookie": cookie, "HX-Request": "true"}, None),
            ("the site's 404 page, logged in", "/no-such-page/", {"Cookie": cookie}, None),
        ]
        print(f"database: {connection.vendor}; gunicorn --workers {args.workers} "
              f"--threads {args.threads}; "
              f"wrk -c {args.connections} -d {args.seconds}s; {os.cpu_count()} cores")
        print(f"{'case':<40} {'requests/s':>11}  target")
        for name, url_path, headers, floor in cases:
            rate, note = wrk(base + url_path, headers, args.seconds, args.connections)
            target = (f">= {floor:,.0f} {'ok' if rate >= floor else 'BELOW'}" if floor
                      else "(reference)")
            print(f"{name:<40} {rate:>11,.0f}  {target} {note}".rstrip())
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"\n{'server time in process (median of 500)':<40} {'ms':>11}  answers")
    for name, url_path, headers, _ in cases:
        median, statuses = in_process(url_path, headers)
        print(f"{name:<40} {median:>11.2f}  {statuses}")


def in_process(path: str, headers: dict[str, str]) -> float:
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    cookie = headers.get("Cookie", "")
    if cookie:
        name, _, value = cookie.partition("=")
        client.cookies[name] = value
    extra = {k: v for k, v in headers.items() if k != "Cookie"}
    times, statuses = [], set()
    for _ in range(500):
        start = time.perf_counter()
        statuses.add(client.get(path, headers=extra).status_code)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, "/".join(map(str, sorted(statuses)))


if __name__ == "__main__":
    main()
