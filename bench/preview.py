"""Benchmark of the selector preview (runs.selectors) at scale: a script, not a test.

    python bench/preview.py [--nodes 10000] [--repeat 30] [--seed 1] [--no-server]

Builds a catalogue of --nodes nodes (40 locations, 6 node types, each node reading 0 to 3
earlier nodes, mostly near ones, so lineage chains run hundreds of nodes deep), then times
preview() for selectors with and without lineage operators, including the worst cases
(every node plus everything downstream; an exclude closing over the whole graph). Prints
the median and the slowest of --repeat evaluations per selector, and the catalogue build
time, against the target:

    preview of a 10,000-node catalogue with lineage operators < 30 ms.

Then, unless --no-server, the same through the dashboard: a temporary SQLite database, the
simulator in a subprocess serving --nodes nodes, and
- the catalogue refresh (runs.catalogue.refresh: every page of GET .../nodes?detail=true,
  parsed and stored): wall time, and peak Python memory (tracemalloc, a second run), against
  5 s and 50 MB;
- the preview endpoint's server time (Django test client, the catalogue already built in
  this process; the first, cold request is reported apart) against 30 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runs.selectors import Catalogue, NodeRecord, preview  # noqa: E402

TARGET_MS = 30.0
TYPES = ("Stage", "Persistent Stage", "Dimension", "Fact", "View", "Work")
SELECTORS = [
    ("one node by location and name", "{ location: %(loc)s name: %(name)s }", ""),
    ("wildcards, no lineage", "{ name: *1* nodeType: Dim* }", ""),
    ("downstream of a location", "{ location: LOC_03 }+", ""),
    ("upstream of the last 100 nodes", "+{ name: %(last)s }", ""),
    ("both ways, AND, OR", "+{ location: LOC_1* }+ OR { nodeType: Fact } AND { name: *7* }", ""),
    ("everything plus downstream", "{ * }+", ""),
    ("all, minus upstream of facts", "", "+{ nodeType: Fact }"),
    ("lineage both sides", "{ name: NODE_00* }+", "+{ location: LOC_39 name: *9 }"),
]


def build(n: int, seed: int) -> list[NodeRecord]:
    rng = random.Random(seed)
    names = [f"NODE_{i:05d}" for i in range(n)]
    locations = [f"LOC_{rng.randrange(40):02d}" for _ in range(n)]
    records = []
    for i in range(n):
        parents = {max(0, i - rng.randint(1, 300)) for _ in range(rng.randint(0, 3))}
        parents.discard(i)
        deps = tuple((locations[p], names[p]) for p in sorted(parents))
        records.append(NodeRecord(str(i + 1), names[i], locations[i], rng.choice(TYPES), deps))
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-server", action="store_true",
                        help="only the pure evaluation, no database or simulator")
    args = parser.parse_args()

    records = build(args.nodes, args.seed)
    started = time.perf_counter()
    catalogue = Catalogue.from_records(records)
    build_ms = (time.perf_counter() - started) * 1000
    edges = sum(len(r.depends_on) for r in records)
    print(f"catalogue: {len(catalogue):,} nodes, {edges:,} dependencies, "
          f"built in {build_ms:.1f} ms (once per cached catalogue, not per preview)")
    print(f"{'selector':<32} {'matched':>8} {'median ms':>10} {'max ms':>8}  "
          f"target {TARGET_MS:.0f} ms")
    worst = 0.0
    middle = catalogue.by_id[str(args.nodes // 2)]
    last_hundred = f"NODE_{(args.nodes - 100) // 100:03d}*"
    fill = {"loc": middle.location, "name": middle.name, "last": last_hundred}
    for label, include, exclude in SELECTORS:
        include, exclude = include % fill, exclude % fill
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = preview(catalogue, include, exclude)
            times.append((time.perf_counter() - started) * 1000)
        median = statistics.median(times)
        worst = max(worst, median)
        print(f"{label:<32} {result.count:>8,} {median:>10.2f} {max(times):>8.2f}  "
              f"{'ok' if median < TARGET_MS else 'OVER'}")
    print(f"slowest median: {worst:.2f} ms against a target of {TARGET_MS:.0f} ms: "
          f"{'met' if worst < TARGET_MS else 'NOT met'}")
    ok = worst < TARGET_MS
    if not args.no_server:
        ok = server_bench(args.nodes, args.repeat) and ok
    return 0 if ok else 1


REFRESH_TARGET_S, REFRESH_TARGET_MB = 5.0, 50.0
SERVER_SELECTORS = [
    ("lineage both ways", "+{ location: MART name: FCT_TABLE_0001* }+", ""),
    ("everything plus downstream", "{ * }+", ""),
    ("all, minus upstream of facts", "", "+{ nodeType: Fact }"),
]


def server_bench(nodes: int, repeat: int) -> bool:
    import base64
    import os
    import subprocess
    import tempfile
    import tracemalloc

    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")
    key = base64.b64encode(b"bench-only-key-32-bytes-long!!!!").decode()
    os.environ.setdefault("CREDENTIALS_ENCRYPTION_KEYS", f"bench1:{key}")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ["SQLITE_PATH"] = str(Path(tempfile.mkdtemp(prefix="preview-bench-")) / "b.db")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import warnings

    import django

    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    from runs import catalogue
    from tests.factories import sim_profile

    call_command("migrate", verbosity=0)
    simulator = subprocess.Popen(
        [sys.executable, "-m", "coalesce_simulator", "--port", "0", "--nodes", str(nodes)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base_url = simulator.stdout.readline().split(" listening on ")[1].split()[0]
        profile = sim_profile(base_url, "bench")
        started = time.perf_counter()
        summary = catalogue.refresh(profile)
        seconds = time.perf_counter() - started
        tracemalloc.start()
        catalogue.refresh(profile)
        peak_mb = tracemalloc.get_traced_memory()[1] / 1024 / 1024
        tracemalloc.stop()
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    refresh_ok = seconds <= REFRESH_TARGET_S and peak_mb <= REFRESH_TARGET_MB
    print(f"\ncatalogue refresh ({summary}): {seconds:.2f} s (target {REFRESH_TARGET_S:.0f} s), "
          f"peak {peak_mb:.1f} MB traced (target {REFRESH_TARGET_MB:.0f} MB): "
          f"{'met' if refresh_ok else 'NOT met'}")

    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "x"))
    url = "/runs/new/preview/"
    print(f"{'preview endpoint':<32} {'cold ms':>8} {'median ms':>10} {'p95 ms':>8}  "
          f"target {TARGET_MS:.0f} ms")
    worst = 0.0
    for number, (label, include, exclude) in enumerate(SERVER_SELECTORS):
        params = {"environment": profile.pk, "include_selector": include,
                  "exclude_selector": exclude}
        if number == 0:
            catalogue._built.clear()  # the first request of a process builds the catalogue
        times = []
        for _ in range(repeat + 1):
            started = time.perf_counter()
            response = client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and b"Matches" in response.content
        cold, warm = times[0], sorted(times[1:])
        median = statistics.median(warm)
        p95 = warm[min(len(warm) - 1, int(len(warm) * 0.95))]
        worst = max(worst, median)
        print(f"{label:<32} {cold:>8.1f} {median:>10.1f} {p95:>8.1f}  "
              f"{'ok' if median <= TARGET_MS else 'OVER'}")
    print(f"slowest preview endpoint median: {worst:.1f} ms against {TARGET_MS:.0f} ms: "
          f"{'met' if worst <= TARGET_MS else 'NOT met'}")
    return refresh_ok and worst <= TARGET_MS


if __name__ == "__main__":
    sys.exit(main())
